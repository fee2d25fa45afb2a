"""The file data plane: upload, download, list, delete, quotas, and path confinement."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from volumes import dataplane
from volumes.models import UploadReservation, Volume
from volumes.tests.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def volume(create_volume):
    return create_volume("files-1", size_gb=1)


def url(volume, path=""):
    return f"/api/v1/volumes/{volume['name']}/files/{path}"


def put(client, volume, path, content: bytes, **headers):
    return client.put(url(volume, path), content, content_type="application/octet-stream", **headers)


def leftovers(root) -> list[str]:
    """Every path below the volume root (to prove that nothing was half-written)."""
    return sorted(str(path.relative_to(root)) for path in Path(root).rglob("*"))


def used_bytes(volume) -> int:
    return Volume.objects.get(pk=volume["id"]).used_bytes


def test_upload_then_download_is_byte_identical(admin, volume):
    content = os.urandom(300_000) + b"\x00\xff" * 10
    response = put(admin, volume, "dir/sub/blob.bin", content)
    assert response.status_code == 201
    assert response.json() == {"path": "dir/sub/blob.bin", "size": len(content),
                               "sha256": hashlib.sha256(content).hexdigest()}
    assert Path(volume["path"], "dir", "sub", "blob.bin").read_bytes() == content
    download = admin.get(url(volume, "dir/sub/blob.bin"), HTTP_ACCEPT="application/octet-stream")
    assert download.status_code == 200
    assert int(download["Content-Length"]) == len(content)
    assert b"".join(download.streaming_content) == content
    assert used_bytes(volume) == len(content)


def test_replacing_a_file_answers_200_and_moves_usage_by_the_difference(admin, volume):
    assert put(admin, volume, "a.txt", b"x" * 100).status_code == 201
    assert put(admin, volume, "a.txt", b"y" * 40).status_code == 200
    assert Path(volume["path"], "a.txt").read_bytes() == b"y" * 40
    assert used_bytes(volume) == 40
    assert put(admin, volume, "empty", b"").status_code == 201
    assert Path(volume["path"], "empty").read_bytes() == b""


def test_mode_and_mtime_headers_are_applied_and_reported(admin, volume):
    response = put(admin, volume, "script.sh", b"#!/bin/sh\n", HTTP_X_FILE_MODE="0750",
                   HTTP_X_FILE_MTIME="1700000000.5")
    assert response.status_code == 201
    info = os.stat(Path(volume["path"], "script.sh"))
    assert info.st_mode & 0o7777 == 0o750
    assert info.st_mtime_ns == 1_700_000_000_500_000_000
    download = admin.get(url(volume, "script.sh"))
    assert download["X-File-Mode"] == "0750"
    assert download["X-File-Mtime"] == "1700000000.500000000"
    precise = put(admin, volume, "precise", b"p", HTTP_X_FILE_MTIME="1600000000.123456789")
    assert precise.status_code == 201
    assert os.stat(Path(volume["path"], "precise")).st_mtime_ns == 1_600_000_000_123_456_789
    assert_error(put(admin, volume, "bad-time", b"x", HTTP_X_FILE_MTIME="nan"), 400, "invalid_header")
    iso = put(admin, volume, "dated", b"d", HTTP_X_FILE_MTIME="2024-01-02T03:04:05Z")
    assert iso.status_code == 201
    assert os.stat(Path(volume["path"], "dated")).st_mtime == 1704164645
    assert_error(put(admin, volume, "bad-mode", b"x", HTTP_X_FILE_MODE="rwx"), 400, "invalid_header")
    assert_error(put(admin, volume, "bad-mode", b"x", HTTP_X_FILE_MODE="4755"), 400, "invalid_header")
    assert_error(put(admin, volume, "bad-time", b"x", HTTP_X_FILE_MTIME="yesterday"), 400, "invalid_header")
    assert not Path(volume["path"], "bad-mode").exists() and not Path(volume["path"], "bad-time").exists()


def test_list_directory_entries_with_types_and_pages(admin, volume):
    put(admin, volume, "docs/readme.md", b"hello", HTTP_X_FILE_MODE="0600")
    put(admin, volume, "docs/guide/one.md", b"1")
    os.symlink("readme.md", Path(volume["path"], "docs", "latest"))
    listing = admin.get(url(volume), {"path": "docs"})
    assert listing.status_code == 200
    body = listing.json()
    assert body["count"] == 3
    entries = {entry["name"]: entry for entry in body["results"]}
    assert entries["readme.md"]["type"] == "file" and entries["readme.md"]["size"] == 5
    assert entries["readme.md"]["mode"] == "0600"
    assert entries["guide"]["type"] == "dir"
    assert entries["latest"]["type"] == "symlink" and entries["latest"]["target"] == "readme.md"
    assert "mtime" in entries["guide"]
    root = admin.get(url(volume)).json()
    assert [entry["name"] for entry in root["results"]] == ["docs"]
    # A directory path lists too, and pages work like every list.
    paged = admin.get(url(volume, "docs/"), {"page_size": 2}).json()
    assert paged["count"] == 3 and len(paged["results"]) == 2 and paged["next"]
    assert_error(admin.get(url(volume), {"path": "missing"}), 404, "file_not_found")


def test_delete_file_symlink_and_directories(admin, volume):
    put(admin, volume, "tree/a.bin", b"a" * 10)
    put(admin, volume, "tree/deep/b.bin", b"b" * 20)
    put(admin, volume, "single.bin", b"s" * 5)
    outside = Path(volume["path"]).parent / "outside.txt"
    outside.write_bytes(b"keep me")
    os.symlink(outside, Path(volume["path"], "link-out"))
    assert used_bytes(volume) == 35
    assert admin.delete(url(volume, "single.bin")).status_code == 204
    assert used_bytes(volume) == 30
    assert admin.delete(url(volume, "link-out")).status_code == 204
    assert outside.read_bytes() == b"keep me"  # the link went, not its target
    assert_error(admin.delete(url(volume, "tree")), 409, "directory_not_empty")
    assert admin.delete(url(volume, "tree"), QUERY_STRING="recursive=true").status_code == 204
    assert leftovers(volume["path"]) == []
    assert used_bytes(volume) == 0
    assert_error(admin.delete(url(volume, "tree")), 404, "file_not_found")
    assert_error(admin.delete(url(volume, "x"), QUERY_STRING="recursive=maybe"), 400, "invalid_parameter")


def test_upload_larger_than_free_quota_is_413_before_reading(admin, volume):
    quota = Volume.objects.get(pk=volume["id"]).quota_bytes
    Volume.objects.filter(pk=volume["id"]).update(used_bytes=quota - 100)
    body = assert_error(put(admin, volume, "new/dir/too-big.bin", b"z" * 101), 413, "payload_too_large")
    assert body["detail"]["available_bytes"] == 100
    assert leftovers(volume["path"]) == []  # no temporary file, no directory
    assert put(admin, volume, "fits.bin", b"z" * 100).status_code == 201
    assert used_bytes(volume) == quota


def test_body_that_outgrows_the_quota_while_streaming_is_413_and_leaves_nothing(admin, volume):
    volume_row = Volume.objects.get(pk=volume["id"])
    Volume.objects.filter(pk=volume_row.pk).update(used_bytes=volume_row.quota_bytes - 3 * dataplane.CHUNK_SIZE)
    stream = io.BytesIO(b"q" * (3 * dataplane.CHUNK_SIZE + 1))
    with pytest.raises(dataplane.OverQuota) as raised:
        dataplane.write_file(volume_row, "deep/er/stream.bin", stream, content_length=None)
    assert raised.value.http_status == 413 and raised.value.code == "quota_exceeded"
    assert leftovers(volume["path"]) == []
    assert not UploadReservation.objects.exists()
    assert Volume.objects.get(pk=volume_row.pk).used_bytes == volume_row.quota_bytes - 3 * dataplane.CHUNK_SIZE


def test_body_shorter_than_content_length_writes_nothing(volume):
    volume_row = Volume.objects.get(pk=volume["id"])
    with pytest.raises(dataplane.IncompleteUpload):
        dataplane.write_file(volume_row, "cut.bin", io.BytesIO(b"12345"), content_length=10)
    assert leftovers(volume["path"]) == []


ESCAPES = [
    "../outside.txt",
    "a/../../outside.txt",
    "%2e%2e/outside.txt",
    "%2E%2E%2Foutside.txt",
    "/etc/passwd",
    "./a.txt",
    "a//b.txt",
    "nul%00byte.txt",
    "back%5C..%5Coutside.txt",
    "..%5Coutside.txt",
    "ctrl%0Aname",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_path_escapes_are_400_for_every_method(admin, volume, escape):
    outside = Path(volume["path"]).parent / "outside.txt"
    outside.write_bytes(b"original")
    assert_error(put(admin, volume, escape, b"evil"), 400, "invalid_path")
    assert_error(admin.get(url(volume, escape)), 400, "invalid_path")
    assert_error(admin.delete(url(volume, escape)), 400, "invalid_path")
    assert outside.read_bytes() == b"original"
    assert leftovers(volume["path"]) == []


def test_listing_escapes_are_400(admin, volume):
    for escape in ("..", "../", "/etc", "a/../..", "x\\..", "a\x00b"):
        assert_error(admin.get(url(volume), {"path": escape}), 400, "invalid_path")


def test_symlink_pointing_out_is_never_followed(admin, volume):
    secret_dir = Path(volume["path"]).parent / "secret"
    secret_dir.mkdir()
    (secret_dir / "key").write_bytes(b"secret")
    os.symlink(secret_dir / "key", Path(volume["path"], "key-link"))
    os.symlink(secret_dir, Path(volume["path"], "dir-link"))
    assert_error(admin.get(url(volume, "key-link")), 400, "invalid_path")
    assert_error(admin.get(url(volume, "dir-link/key")), 400, "invalid_path")
    assert_error(put(admin, volume, "dir-link/key", b"overwritten"), 400, "invalid_path")
    assert_error(put(admin, volume, "dir-link/new", b"planted"), 400, "invalid_path")
    assert_error(admin.delete(url(volume, "dir-link/key")), 400, "invalid_path")
    assert_error(admin.get(url(volume), {"path": "dir-link"}), 400, "invalid_path")
    assert (secret_dir / "key").read_bytes() == b"secret"
    assert sorted(os.listdir(secret_dir)) == ["key"]


def test_symlink_directory_component_inside_the_volume_is_refused_too(admin, volume):
    put(admin, volume, "real/file.txt", b"inside")
    os.symlink("real", Path(volume["path"], "alias"))
    assert_error(admin.get(url(volume, "alias/file.txt")), 400, "invalid_path")
    assert_error(put(admin, volume, "alias/other.txt", b"x"), 400, "invalid_path")
    assert not Path(volume["path"], "real", "other.txt").exists()


def test_uploading_onto_a_symlink_is_refused_and_its_target_untouched(admin, volume):
    outside = Path(volume["path"]).parent / "target.txt"
    outside.write_bytes(b"untouched")
    os.symlink(outside, Path(volume["path"], "swap"))
    assert_error(put(admin, volume, "swap", b"new content"), 400, "invalid_path")
    assert outside.read_bytes() == b"untouched"
    assert os.path.islink(Path(volume["path"], "swap"))
    assert leftovers(volume["path"]) == ["swap"]


def test_type_conflicts_are_409(admin, volume):
    put(admin, volume, "dir/file.txt", b"x")
    assert_error(put(admin, volume, "dir", b"x"), 409, "path_conflict")
    assert_error(put(admin, volume, "dir/file.txt/child", b"x"), 409, "path_conflict")
    assert_error(put(admin, volume, "trailing/", b"x"), 400, "invalid_path")
    os.mkfifo(Path(volume["path"], "fifo"))
    assert_error(admin.get(url(volume, "fifo")), 409, "path_conflict")


def test_roles_and_unknown_volume(api, volume):
    put(api("admin"), volume, "shared.txt", b"data")
    assert api("read").get(url(volume, "shared.txt")).status_code == 200
    assert api("read").get(url(volume)).status_code == 200
    assert_error(put(api("read"), volume, "w.txt", b"x"), 403, "permission_denied")
    assert_error(put(api("backup"), volume, "w.txt", b"x"), 403, "permission_denied")
    assert_error(api("backup").delete(url(volume, "shared.txt")), 403, "permission_denied")
    assert api(None).get(url(volume, "shared.txt")).status_code == 401
    assert not Path(volume["path"], "w.txt").exists()
    assert_error(api("admin").get("/api/v1/volumes/ghost/files/a.txt"), 404, "volume_not_found")
    assert_error(put(api("admin"), {"name": "ghost"}, "a.txt", b"x"), 404, "volume_not_found")
    assert_error(api("admin").get(url(volume, "missing.txt")), 404, "file_not_found")


def test_writes_need_an_available_volume(admin, volume):
    Volume.objects.filter(pk=volume["id"]).update(status="restoring")
    assert_error(put(admin, volume, "a.txt", b"x"), 409, "volume_not_available")
    assert admin.get(url(volume)).status_code == 200  # reads still work


def chunked_put(client, volume, path, content: bytes):
    """A PUT as a de-chunking WSGI server (gunicorn) presents it: no Content-Length, the body
    readable to EOF and `wsgi.input_terminated` set."""
    return client.put(url(volume, path), b"", content_type="application/octet-stream", CONTENT_LENGTH="",
                      HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(content),
                                                          "wsgi.input_terminated": True})


def test_chunked_upload_streams_to_eof_and_413_when_it_outgrows_the_quota(admin, volume):
    content = os.urandom(3 * dataplane.CHUNK_SIZE // 2)
    response = chunked_put(admin, volume, "chunked/one.bin", content)
    assert response.status_code == 201, response.content
    assert Path(volume["path"], "chunked", "one.bin").read_bytes() == content
    quota = Volume.objects.get(pk=volume["id"]).quota_bytes
    Volume.objects.filter(pk=volume["id"]).update(used_bytes=quota - dataplane.CHUNK_SIZE)
    body = assert_error(chunked_put(admin, volume, "chunked/new/two.bin", content), 413, "quota_exceeded")
    assert body["detail"]["available_bytes"] == dataplane.CHUNK_SIZE
    assert leftovers(volume["path"]) == ["chunked", "chunked/one.bin"]


class BrokenStream:
    """A client that sends one chunk and then disconnects."""

    def __init__(self):
        self.calls = 0

    def read(self, size):
        self.calls += 1
        if self.calls == 1:
            return b"a" * min(size, 1000)
        raise ConnectionResetError("client went away")


def test_client_disconnect_mid_upload_writes_nothing(volume):
    volume_row = Volume.objects.get(pk=volume["id"])
    with pytest.raises(dataplane.IncompleteUpload):
        dataplane.write_file(volume_row, "new/partial.bin", BrokenStream(), content_length=5000)
    assert leftovers(volume["path"]) == []
    assert Volume.objects.get(pk=volume_row.pk).used_bytes == 0


def test_storage_vanishing_mid_operation_is_a_clear_error_not_a_crash(volume):
    import shutil

    volume_row = Volume.objects.get(pk=volume["id"])
    shutil.rmtree(volume["path"])
    with pytest.raises(dataplane.VolumeNotAvailable):
        dataplane.write_file(volume_row, "a.txt", io.BytesIO(b"x"), content_length=1)
    with pytest.raises(dataplane.VolumeNotAvailable):
        dataplane.list_directory(volume_row, "")


def test_failing_disk_is_a_pool_error_and_leaves_nothing(admin, volume, monkeypatch):
    import errno

    def failing_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(dataplane.os, "fsync", failing_fsync)  # fault injection: the disk fails
    body = assert_error(put(admin, volume, "dir/a.bin", b"x" * 10), 500, "pool_error")
    assert "Input/output error" in body["message"]
    monkeypatch.undo()
    assert leftovers(volume["path"]) == []
    assert used_bytes(volume) == 0
