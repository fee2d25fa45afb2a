"""The issue's story through the data plane only, as a curl user does it: upload files with
modes and times, back up, delete them over HTTP, restore into a new volume, and download
byte-identical files with the same modes and times. Real Celery worker on real Redis."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FILES = {
    "hello.txt": (b"hello, data plane\n", "0600", "1600000000.123456789"),
    "bin/run.sh": (b"#!/bin/sh\necho hi\n", "0750", "1650000000.5"),
    "data/deep/blob.bin": (os.urandom(2 * 1024 * 1024 + 3), "0644", "1700000000"),
    "data/empty": (b"", "0640", "1710000000"),
}


def wait_for_job(client, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {body.get('status')} after {timeout} s")


def test_upload_backup_delete_restore_download(api, celery_worker):
    admin = api("admin")
    assert admin.post("/api/v1/volumes", {"name": "story", "size_gb": 1}, format="json").status_code == 201
    for path, (content, mode, mtime) in FILES.items():
        response = admin.put(f"/api/v1/volumes/story/files/{path}", content, content_type="application/octet-stream",
                             HTTP_X_FILE_MODE=mode, HTTP_X_FILE_MTIME=mtime)
        assert response.status_code == 201, response.content
        assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()
    total = sum(len(content) for content, _, _ in FILES.values())
    assert admin.get("/api/v1/volumes/story").json()["used_bytes"] == total

    backup = api("backup").post("/api/v1/volumes/story/backups")
    assert backup.status_code == 202, backup.content
    assert wait_for_job(admin, backup.json()["job"])["status"] == "succeeded"

    for top in ("hello.txt", "bin", "data"):
        assert admin.delete(f"/api/v1/volumes/story/files/{top}", QUERY_STRING="recursive=true").status_code == 204
    assert admin.get("/api/v1/volumes/story/files/").json()["count"] == 0
    assert admin.get("/api/v1/volumes/story").json()["used_bytes"] == 0

    restore = admin.post(f"/api/v1/backups/{backup.json()['id']}/restore", {"new_volume_name": "story-copy"},
                         format="json")
    assert restore.status_code == 202, restore.content
    assert wait_for_job(admin, restore.json()["id"])["status"] == "succeeded"

    copy = admin.get("/api/v1/volumes/story-copy").json()
    assert copy["status"] == "available" and copy["used_bytes"] == total
    for path, (content, mode, mtime) in FILES.items():
        download = admin.get(f"/api/v1/volumes/story-copy/files/{path}")
        assert download.status_code == 200, path
        assert b"".join(download.streaming_content) == content, path
        assert download["X-File-Mode"] == mode, path
        seconds, _, fraction = mtime.partition(".")
        assert download["X-File-Mtime"] == f"{seconds}.{fraction.ljust(9, '0')}", path
    root = {entry["name"]: entry["type"] for entry in admin.get("/api/v1/volumes/story-copy/files/").json()["results"]}
    assert root == {"hello.txt": "file", "bin": "dir", "data": "dir"}
