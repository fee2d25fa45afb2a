"""The main user story, end to end, with a real Celery worker on real Redis:

create a volume, write files into it, trigger a backup, poll the job to `succeeded`, delete
the files, restore the backup into a NEW volume and get byte-identical files back (content,
mode, mtime, symlinks, empty dirs); then restore in place into the original volume.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

JOB_TIMEOUT_SECONDS = 90
FIXED_MTIME_NS = 1_600_000_000_123_456_789


def write_tree(root: Path) -> None:
    """Regular, empty, nested and binary files, an empty dir, a symlink, odd modes and mtimes."""
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "hello.txt").write_bytes(b"hello, backups\n")
    (root / "empty.bin").write_bytes(b"")
    (root / "docs" / "deep" / "er" / "nested.dat").write_bytes(os.urandom(300_000))
    (root / "docs" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o750)
    os.chmod(root / "hello.txt", 0o600)
    os.chmod(root / "empty-dir", 0o700)
    os.symlink("docs/deep/er/nested.dat", root / "link-to-nested")
    os.symlink("../outside/does-not-exist", root / "docs" / "dangling")
    os.utime(root / "hello.txt", ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    os.utime(root / "docs" / "deep", ns=(FIXED_MTIME_NS - 10**9, FIXED_MTIME_NS - 10**9))


def describe_tree(root: Path) -> dict[str, tuple]:
    """Relative path -> (kind, mode, mtime in µs, content or link target) for every entry."""
    found = {}
    for directory, dir_names, file_names in os.walk(root):
        for name in dir_names + file_names:
            path = Path(directory) / name
            info = os.lstat(path)
            relative = str(path.relative_to(root))
            mtime_us = info.st_mtime_ns // 1000
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("symlink", None, None, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                # A directory's mtime changes when entries are written into it during the
                # restore; the engine sets it afterwards, so it must match too.
                found[relative] = ("dir", stat.S_IMODE(info.st_mode), mtime_us, None)
            else:
                found[relative] = ("file", stat.S_IMODE(info.st_mode), mtime_us, path.read_bytes())
    return found


def wait_for_job(client, job_id: str, timeout: float = JOB_TIMEOUT_SECONDS) -> dict:
    deadline = time.monotonic() + timeout
    body = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {body.get('status')} after {timeout} s: {body}")


def test_backup_then_restore_into_a_new_volume_and_in_place_gives_identical_files(api, celery_worker):
    admin, operator = api("admin"), api("backup")

    created = admin.post("/api/v1/volumes", {"name": "e2e-data", "size_gb": 1}, format="json")
    assert created.status_code == 201, created.content
    volume = created.json()
    root = Path(volume["path"])
    write_tree(root)
    original = describe_tree(root)
    assert len(original) == 11

    triggered = operator.post(f"/api/v1/volumes/{volume['id']}/backups")
    assert triggered.status_code == 202, triggered.content
    backup = triggered.json()
    job = wait_for_job(operator, backup["job"])
    assert job["status"] == "succeeded", job
    assert job["progress"]["percent"] == 100.0
    backup = operator.get(f"/api/v1/backups/{backup['id']}").json()
    assert backup["status"] == "completed" and backup["snapshot_id"] and backup["completed_at"]
    assert backup["stats"]["files"] == 5 and backup["stats"]["bytes_read"] > 3 * 1024 * 1024

    # Browse and download from the snapshot.
    listing = operator.get(f"/api/v1/backups/{backup['id']}/files", {"path": "/docs"}).json()
    assert {entry["name"] for entry in listing["entries"]} == {"deep", "big.bin", "dangling"}
    download = operator.get(f"/api/v1/backups/{backup['id']}/download", {"path": "/hello.txt"})
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"hello, backups\n"

    # Lose the data.
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            import shutil

            shutil.rmtree(child)
        else:
            child.unlink()
    assert list(root.iterdir()) == []

    restore = admin.post(f"/api/v1/backups/{backup['id']}/restore", {"new_volume_name": "e2e-copy"}, format="json")
    assert restore.status_code == 202, restore.content
    restore_job = wait_for_job(admin, restore.json()["id"])
    assert restore_job["status"] == "succeeded", restore_job
    copy = admin.get("/api/v1/volumes/e2e-copy").json()
    assert copy["status"] == "available"
    assert describe_tree(Path(copy["path"])) == original

    # And in place, into the (now empty) original volume.
    in_place = admin.post(f"/api/v1/backups/{backup['id']}/restore", {}, format="json")
    assert in_place.status_code == 202, in_place.content
    # The volume is `restoring` from the moment the restore is queued until its job ends. A
    # fast worker may already be done: the status read counts when the job, read after it,
    # has not finished yet.
    status_now = admin.get(f"/api/v1/volumes/{volume['id']}").json()["status"]
    if admin.get(f"/api/v1/jobs/{in_place.json()['id']}").json()["status"] in ("queued", "running"):
        assert status_now == "restoring"
    assert wait_for_job(admin, in_place.json()["id"])["status"] == "succeeded"
    assert describe_tree(root) == original
    assert admin.get(f"/api/v1/volumes/{volume['id']}").json()["status"] == "available"
    # No staging folders are left next to the volumes.
    assert not [path for path in root.parent.iterdir() if path.name.startswith((".restore-", ".replaced-"))]


def test_a_retried_trigger_is_one_backup_and_unchanged_data_stores_almost_nothing(api, celery_worker):
    admin, operator = api("admin"), api("backup")
    volume = admin.post("/api/v1/volumes", {"name": "e2e-dedup", "size_gb": 1}, format="json").json()
    Path(volume["path"], "data.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    first = operator.post(f"/api/v1/volumes/{volume['id']}/backups", HTTP_IDEMPOTENCY_KEY="e2e-1").json()
    repeat = operator.post(f"/api/v1/volumes/{volume['id']}/backups", HTTP_IDEMPOTENCY_KEY="e2e-1").json()
    assert repeat["id"] == first["id"]
    assert wait_for_job(operator, first["job"])["status"] == "succeeded"
    second = operator.post(f"/api/v1/volumes/{volume['id']}/backups").json()
    assert wait_for_job(operator, second["job"])["status"] == "succeeded"
    stats = operator.get(f"/api/v1/backups/{second['id']}").json()["stats"]
    assert stats["bytes_new"] < 64 * 1024
    from backups.models import Backup

    snapshot_ids = set(Backup.objects.filter(volume_id=volume["id"]).values_list("snapshot_id", flat=True))
    assert len(snapshot_ids) == 2
