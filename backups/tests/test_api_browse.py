"""Browse and download a snapshot through the API, and delete a backup (real engine, in-process)."""

from __future__ import annotations

import pytest

from backups import runners, services
from backups.models import Backup, BackupTrigger, JobStatus
from backups.tests.test_api_backups import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def backed_up(volume, own_repository) -> Backup:
    backup = services.trigger_backup(volume, trigger=BackupTrigger.API)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED
    backup.refresh_from_db()
    return backup


def test_listing_a_snapshot_directory(api, backed_up):
    root = api("read").get(f"/api/v1/backups/{backed_up.id}/files").json()
    assert root["path"] == "/"
    entries = {entry["name"]: entry for entry in root["entries"]}
    assert set(entries) == {"a.txt", "dir"}
    assert entries["a.txt"]["type"] == "file" and entries["a.txt"]["size"] == 5
    assert entries["dir"]["type"] == "dir"
    nested = api("read").get(f"/api/v1/backups/{backed_up.id}/files", {"path": "dir"}).json()
    assert [entry["name"] for entry in nested["entries"]] == ["b.txt"]


def test_downloading_one_file_streams_its_bytes(api, backed_up):
    response = api("read").get(f"/api/v1/backups/{backed_up.id}/download", {"path": "/dir/b.txt"})
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert b"".join(response.streaming_content) == b"beta"
    assert "b.txt" in response["Content-Disposition"]


def test_a_missing_path_in_a_snapshot_is_404(api, backed_up):
    listing = api("read").get(f"/api/v1/backups/{backed_up.id}/files", {"path": "/nope"})
    assert listing.status_code == 404 and set(listing.json()) == {"code", "message", "detail"}
    download = api("read").get(f"/api/v1/backups/{backed_up.id}/download", {"path": "/nope.txt"})
    assert download.status_code == 404 and set(download.json()) == {"code", "message", "detail"}


def test_deleting_a_backup_forgets_its_snapshot(api, backed_up, own_repository):
    from backups.storage import open_repository

    assert api("admin").delete(f"/api/v1/backups/{backed_up.id}").status_code == 204
    assert not Backup.objects.filter(pk=backed_up.pk).exists()
    repository = open_repository()
    try:
        assert repository.snapshots() == []
    finally:
        repository.close()
    assert_error(api("read").get(f"/api/v1/backups/{backed_up.id}"), 404, "backup_not_found")
