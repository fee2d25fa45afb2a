"""Scoped tokens on the backups API: backup-all covers the token's volumes only, verbs map to
triggers, verify, restore and cancel, and a restore cannot leave the scope.

Celery messages are recorded, not sent (`sent_messages`).
"""

from __future__ import annotations

import pytest

from backups.models import Backup, Job, JobKind
from backups.tests.test_api_backups import assert_error, completed_backup

pytestmark = pytest.mark.django_db


def test_backup_all_with_a_scoped_token_backs_up_only_its_volumes(api, scoped_api, make_volume, sent_messages):
    make_volume("db-1", labels={"env": "prod"})
    make_volume("db-2", labels={"env": "test"})
    make_volume("web-1", labels={"env": "prod"})
    response = scoped_api("backup", volumes=["db-*"], label_selector="env=prod").post(
        "/api/v1/backups", {"all": True}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert [item["volume_name"] for item in body["results"]] == ["db-1"] and body["skipped"] == []
    assert list(Backup.objects.values_list("volume_name", flat=True)) == ["db-1"]
    assert list(Job.objects.values_list("volume__name", flat=True)) == ["db-1"]
    # An unscoped backup token still backs up every volume (db-1 is now busy: skipped).
    everything = api("backup").post("/api/v1/backups", {"all": True}, format="json").json()
    assert sorted(item["volume_name"] for item in everything["results"]) == ["db-2", "web-1"]


def test_verbs_pick_what_a_backup_token_may_start(scoped_api, make_volume, sent_messages):
    volume = make_volume("db-1", files={"a.txt": b"alpha"})
    backup = completed_backup(volume)
    client = scoped_api("backup", verbs=["read", "backup"])
    assert client.post("/api/v1/volumes/db-1/backups").status_code == 202
    refused = assert_error(client.post(f"/api/v1/backups/{backup.pk}/verify", {}, format="json"),
                           403, "verb_not_in_scope")
    assert refused["detail"] == {"verb": "verify", "allowed": ["read", "backup"]}
    assert not Job.objects.filter(kind=JobKind.VERIFY).exists()
    assert client.get(f"/api/v1/backups/{backup.pk}").status_code == 200


def test_cancelling_needs_the_verb_of_the_jobs_kind(api, scoped_api, volume, sent_messages):
    backup = api("backup").post(f"/api/v1/volumes/{volume.id}/backups").json()
    verifier = scoped_api("backup", name="verifier", verbs=["verify"])
    assert_error(verifier.post(f"/api/v1/jobs/{backup['job']}/cancel"), 403, "verb_not_in_scope")
    backer = scoped_api("backup", name="backer", verbs=["backup"])
    assert backer.post(f"/api/v1/jobs/{backup['job']}/cancel").status_code == 202


def test_a_volume_scoped_admin_restores_only_inside_its_scope(scoped_api, make_volume, sent_messages):
    source = make_volume("db-1", files={"a.txt": b"alpha"})
    make_volume("web-1")
    backup = completed_backup(source)
    client = scoped_api("admin", volumes=["db-*"])
    assert_error(client.post(f"/api/v1/backups/{backup.pk}/restore", {"volume": "web-1"}, format="json"),
                 404, "volume_not_found")
    assert_error(client.post(f"/api/v1/backups/{backup.pk}/restore", {"new_volume_name": "db-new"}, format="json"),
                 403, "outside_token_scope")
    assert not Job.objects.filter(kind=JobKind.RESTORE).exists()
    assert client.post(f"/api/v1/backups/{backup.pk}/restore", {}, format="json").status_code == 202


def test_backups_of_a_deleted_volume_are_outside_every_volume_scope(api, scoped_api, make_volume):
    volume = make_volume("db-1")
    backup = completed_backup(volume)
    volume.delete()
    assert api("read").get(f"/api/v1/backups/{backup.pk}").status_code == 200
    client = scoped_api("read", volumes=["db-1"])
    assert_error(client.get(f"/api/v1/backups/{backup.pk}"), 404, "backup_not_found")
    assert_error(client.get("/api/v1/volumes/db-1/backups"), 404, "volume_not_found")
