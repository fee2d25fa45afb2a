"""Quota reservations against a real gunicorn: parallel uploads, broken uploads, killed workers.

The volume keeps 1.5 MiB of free room (its `used_bytes` is set just below the 1 GiB quota,
as the other quota tests do), and every upload is 1 MiB: one fits, two do not.

Two uploads are "in parallel" when the server has started both: each has either its hidden
temporary file in the volume (it passed the quota check and streams) or its answer. Only
then does either get the rest of its body, so without reservations both would succeed.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import select
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from volumes.dataplane import TEMPORARY_PREFIX
from volumes.models import UploadReservation, Volume

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024
UPLOAD_SIZE = MIB
FREE_ROOM = 3 * MIB // 2
TIMEOUT = 30


def wait_until(condition, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


@pytest.fixture
def volume(make_volume):
    volume = make_volume("parallel")
    Volume.objects.filter(pk=volume.pk).update(used_bytes=volume.quota_bytes - FREE_ROOM)
    return Volume.objects.get(pk=volume.pk)


@pytest.fixture
def headers(tokens):
    return {"X-API-TOKEN": tokens["admin"], "Content-Type": "application/octet-stream"}


def files_url(server, volume, path: str) -> str:
    return f"{server.url}/api/v1/volumes/{volume.name}/files/{path}"


def entries_on_disk(volume) -> list[str]:
    """Everything in the volume's folder, hidden temporary files included."""
    return sorted(os.listdir(volume.path))


def temporary_files(volume) -> list[str]:
    return [name for name in entries_on_disk(volume) if name.startswith(TEMPORARY_PREFIX)]


def reservation_of(volume):
    return UploadReservation.objects.filter(volume=volume).first()


class RawUpload:
    """A PUT over a plain socket: the headers declare `size` bytes and only `sent` of them go
    out until `finish()` (or never, when the test drops the connection)."""

    def __init__(self, server, volume, token: str, path: str, *, size: int, sent: int):
        self.path = path
        self.size = size
        self.sent = sent
        self.connection = socket.create_connection(server.address, timeout=TIMEOUT)
        head = (f"PUT /api/v1/volumes/{volume.name}/files/{path} HTTP/1.1\r\nHost: {server.address[0]}\r\n"
                f"X-API-TOKEN: {token}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {size}\r\nConnection: close\r\n\r\n")
        self.connection.sendall(head.encode() + b"r" * sent)

    def answered(self) -> bool:
        """The server has answered already (before the whole body arrived)."""
        return bool(select.select([self.connection], [], [], 0)[0])

    def finish(self) -> tuple[int, dict]:
        """Send the rest of the body unless the server already answered; (status, JSON body)."""
        if not self.answered():
            try:
                self.connection.sendall(b"r" * (self.size - self.sent))
            except OSError as error:  # it answered and closed meanwhile: read that answer
                if error.errno not in (errno.EPIPE, errno.ECONNRESET):
                    raise
        response = http.client.HTTPResponse(self.connection, method="PUT")
        try:
            response.begin()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            self.close()

    def close(self) -> None:
        self.connection.close()


def assert_exactly_one_succeeded(results: dict, volume, refusal_code: str) -> None:
    statuses = {path: status for path, (status, _) in results.items()}
    assert sorted(statuses.values()) == [201, 413], results
    winner = next(path for path, status in statuses.items() if status == 201)
    refusal = next(body for status, body in results.values() if status == 413)
    assert set(refusal) == {"code", "message", "detail"} and refusal["code"] == refusal_code, refusal
    assert refusal["detail"]["quota_bytes"] == volume.quota_bytes
    # Only the winner's file: no partial file, no temporary file, no reservation left.
    assert entries_on_disk(volume) == [winner]
    assert Path(volume.path, winner).stat().st_size == UPLOAD_SIZE
    assert not UploadReservation.objects.filter(volume=volume).exists()
    assert Volume.objects.get(pk=volume.pk).used_bytes == volume.quota_bytes - FREE_ROOM + UPLOAD_SIZE


def test_two_parallel_uploads_that_together_exceed_the_quota_one_succeeds(gunicorn_server, volume, tokens):
    uploads = [RawUpload(gunicorn_server, volume, tokens["admin"], path, size=UPLOAD_SIZE, sent=UPLOAD_SIZE // 2)
               for path in ("one.bin", "two.bin")]
    try:
        wait_until(lambda: len(temporary_files(volume)) + sum(upload.answered() for upload in uploads) >= 2,
                   "the server to stream or answer both uploads")
        results = {upload.path: upload.finish() for upload in uploads}
    finally:
        for upload in uploads:
            upload.close()
    assert_exactly_one_succeeded(results, volume, "payload_too_large")


def test_two_parallel_chunked_uploads_that_together_exceed_the_quota_one_succeeds(gunicorn_server, volume, headers):
    # Without Content-Length the room is held as the body arrives, so both start streaming.
    gate = threading.Event()
    results = {}

    def chunks():
        yield b"c" * (UPLOAD_SIZE // 2)
        gate.wait(TIMEOUT)
        yield b"c" * (UPLOAD_SIZE - UPLOAD_SIZE // 2)

    def upload(path):
        response = requests.put(files_url(gunicorn_server, volume, path), data=chunks(), headers=headers,
                                timeout=TIMEOUT)
        results[path] = (response.status_code, response.json())

    threads = [threading.Thread(target=upload, args=(path,)) for path in ("one.bin", "two.bin")]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(temporary_files(volume)) == 2, "the server to stream both uploads")
    finally:
        gate.set()
        for thread in threads:
            thread.join(TIMEOUT)
    assert_exactly_one_succeeded(results, volume, "quota_exceeded")


def test_a_chunked_upload_larger_than_the_room_is_refused_and_leaves_nothing(gunicorn_server, volume, headers):
    def chunks():
        for _ in range(4):
            yield b"z" * (MIB // 2)

    response = requests.put(files_url(gunicorn_server, volume, "big/too-big.bin"), data=chunks(), headers=headers,
                            timeout=TIMEOUT)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "quota_exceeded"
    assert entries_on_disk(volume) == []
    assert not UploadReservation.objects.filter(volume=volume).exists()


def test_an_upload_that_breaks_off_releases_its_room(gunicorn_server, volume, headers, tokens):
    upload = RawUpload(gunicorn_server, volume, tokens["admin"], "cut.bin", size=UPLOAD_SIZE, sent=UPLOAD_SIZE // 2)
    try:
        assert wait_until(lambda: reservation_of(volume), "the upload's reservation").reserved_bytes == UPLOAD_SIZE
        wait_until(lambda: temporary_files(volume), "the upload's temporary file")
    finally:
        upload.close()  # the client goes away half-way
    wait_until(lambda: reservation_of(volume) is None, "the reservation to be released")
    wait_until(lambda: entries_on_disk(volume) == [], "the temporary file to be removed")
    # 1 MiB fits in the 1.5 MiB room only because the broken upload gave its 1 MiB back.
    response = requests.put(files_url(gunicorn_server, volume, "after.bin"), data=b"a" * UPLOAD_SIZE,
                            headers=headers, timeout=TIMEOUT)
    assert response.status_code == 201, response.text


def test_the_room_of_a_killed_worker_is_reclaimed_by_the_next_upload(gunicorn_server, volume, headers, tokens):
    upload = RawUpload(gunicorn_server, volume, tokens["admin"], "killed.bin", size=UPLOAD_SIZE,
                       sent=UPLOAD_SIZE // 2)
    try:
        worker_pid = wait_until(lambda: reservation_of(volume), "the upload's reservation").owner_pid
        parent_pid = int(Path(f"/proc/{worker_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert parent_pid == gunicorn_server.process.pid  # a worker of the gunicorn this module started
        os.kill(worker_pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{worker_pid}").exists(), "gunicorn to reap the killed worker")
    finally:
        upload.close()
    assert reservation_of(volume).owner_pid == worker_pid  # nothing released it: the process died
    response = requests.put(files_url(gunicorn_server, volume, "next.bin"), data=b"n" * UPLOAD_SIZE,
                            headers=headers, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    assert not UploadReservation.objects.filter(volume=volume).exists()
