"""Status `data_missing` (a volume `manage.py rebuild_catalog` recreated without its data
folder): the API lists and filters it and refuses what needs the data, the admin shows and
filters it, metrics count it, and a restore into it either brings the data back or leaves it
`data_missing`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from prometheus_client import CollectorRegistry

from backups.models import Backup, BackupStatus
from monitoring.collectors import CatalogCollector
from monitoring.exposition import render
from monitoring.tests.factories import samples, value
from volumes import services
from volumes.models import Volume, VolumeStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def missing(settings):
    """A volume recreated from its backups whose folder is not there."""
    return services.recreate_volume(volume_id=uuid.uuid4(), name="lost-data", size_gb=3, labels={"team": "a"},
                                    policy=None)


def test_a_recreated_volume_without_its_folder_is_data_missing_and_with_it_available(missing, settings):
    assert missing.status == VolumeStatus.DATA_MISSING and str(missing.pk) in missing.path
    assert "is missing" in missing.status_message
    volume_id = uuid.uuid4()
    folder = Path(settings.VOLUME_ROOT) / str(volume_id)
    folder.mkdir(parents=True)
    (folder / "kept.txt").write_bytes(b"12345")
    present = services.recreate_volume(volume_id=volume_id, name="still-here", size_gb=1, labels={}, policy=None)
    assert (present.status, present.used_bytes) == (VolumeStatus.AVAILABLE, 5)
    with pytest.raises(services.VolumeExists):
        services.recreate_volume(volume_id=uuid.uuid4(), name="still-here", size_gb=1, labels={}, policy=None)


def test_a_volume_of_a_pool_this_host_does_not_have_is_data_missing_even_if_its_old_path_exists(tmp_path):
    old_folder = tmp_path / "elsewhere"
    old_folder.mkdir()
    volume = services.recreate_volume(volume_id=uuid.uuid4(), name="other-pool", size_gb=1, labels={}, policy=None,
                                      pool="fast", recorded_path=str(old_folder))
    assert (volume.status, volume.path) == (VolumeStatus.DATA_MISSING, str(old_folder))
    assert "Pool 'fast' is not configured" in volume.status_message
    assert services.recheck_missing_data(volume) is False


def test_the_api_lists_and_filters_it_and_refuses_backups_and_file_reads(api, missing):
    reader = api("read")
    listed = reader.get("/api/v1/volumes", {"status": "data_missing"}).json()
    assert [(item["name"], item["status"]) for item in listed["results"]] == [("lost-data", "data_missing")]
    assert reader.get("/api/v1/volumes", {"status": "available"}).json()["results"] == []
    backup = api("backup").post(f"/api/v1/volumes/{missing.pk}/backups", {}, format="json")
    assert backup.status_code == 409 and backup.json()["code"] == "volume_not_available"
    files = reader.get(f"/api/v1/volumes/{missing.pk}/files/")
    assert files.status_code == 409 and files.json()["detail"]["status"] == "data_missing"


def test_the_admin_shows_and_filters_it(client, missing, make_volume):
    make_volume("fine")
    client.force_login(get_user_model().objects.create_superuser("operator", "op@example.com", "secret-pass-123"))
    filtered = client.get("/admin/volumes/volume/", {"status__exact": "data_missing"})
    assert filtered.status_code == 200
    assert b">lost-data<" in filtered.content and b">fine<" not in filtered.content
    assert b"Data missing" in filtered.content
    assert client.get(f"/admin/volumes/volume/{missing.pk}/change/").status_code == 200


def test_metrics_count_it_by_status(missing, make_volume):
    make_volume("fine")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector())
    parsed = samples(render(registry.collect()))
    assert value(parsed, "storage_volumes", status="data_missing") == 1
    assert value(parsed, "storage_volumes", status="available") == 1


def test_a_restore_into_it_that_fails_leaves_it_data_missing_and_one_that_succeeds_available(missing, make_volume):
    services.start_restoring(missing)
    services.finish_restore(missing.pk, succeeded=False, new_volume=False, error="cancelled")
    missing.refresh_from_db()
    assert missing.status == VolumeStatus.DATA_MISSING and "is missing" in missing.status_message
    services.start_restoring(missing)
    Path(missing.path).mkdir(parents=True)  # what the restore's swap does
    services.finish_restore(missing.pk, succeeded=True, new_volume=False)
    missing.refresh_from_db()
    assert missing.status == VolumeStatus.AVAILABLE and missing.status_message == ""
    # A volume that has its folder stays available after a failed restore, as before.
    healthy = make_volume("healthy", files={"a": b"a"})
    services.start_restoring(healthy)
    services.finish_restore(healthy.pk, succeeded=False, new_volume=False, error="cancelled")
    healthy.refresh_from_db()
    assert healthy.status == VolumeStatus.AVAILABLE


def test_a_restore_through_the_api_can_target_it(api, missing, monkeypatch):
    from backups import jobs

    monkeypatch.setattr(jobs.publish, "publisher", lambda job_id, queue, countdown: None)  # no broker here
    backup = Backup.objects.create(volume_id=missing.pk, volume_name=missing.name, status=BackupStatus.COMPLETED,
                                   snapshot_id="ab" * 32, completed_at=missing.created_at)
    response = api("admin").post(f"/api/v1/backups/{backup.pk}/restore", {}, format="json")
    assert response.status_code == 202, response.content
    assert Volume.objects.get(pk=missing.pk).status == VolumeStatus.RESTORING
