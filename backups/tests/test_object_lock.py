"""S3 Object Lock on the platform: policy fields and their validation, locked backups, a
stolen admin token that cannot delete them, prune keeping them, and a restore afterwards.

Storage is a real moto_server bucket created with Object Lock enabled (`own_s3_lock_repository`).
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups import runners, services
from backups.models import Backup, BackupTrigger, Job, JobStatus, Policy
from backups.storage import open_repository

pytestmark = pytest.mark.django_db

LOCKED = {"name": "locked", "retention": {"keep_last": 1}, "lock_mode": "governance", "lock_days": 30}


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password-1"))
    return client


def back_up(volume) -> Backup:
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED, Job.objects.get(pk=backup.job_id).error
    return Backup.objects.get(pk=backup.pk)


def digests(root) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in Path(root).rglob("*") if path.is_file()}


# --- policy validation -------------------------------------------------------------------------
@pytest.mark.parametrize("body, field", [
    ({"lock_mode": "governance"}, "lock_days"),
    ({"lock_days": 30}, "lock_mode"),
    ({"lock_mode": "GOVERNANCE", "lock_days": 30}, "lock_mode"),
    ({"lock_mode": "forever", "lock_days": 30}, "lock_mode"),
    ({"lock_mode": "compliance", "lock_days": 3651}, "lock_days"),
    ({"lock_mode": "compliance", "lock_days": -1}, "lock_days"),
    ({"lock_mode": "compliance", "lock_days": "thirty"}, "lock_days"),
])
def test_lock_fields_that_do_not_fit_together_are_a_400_naming_the_field(api, own_s3_lock_repository, body,
                                                                          field):
    answer = api("admin").post("/api/v1/policies", {"name": "p", **body}, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["code"] == "validation_error"
    assert field in answer.json()["detail"]
    assert not Policy.objects.filter(name="p").exists()


@pytest.mark.parametrize("storage, reason", [("own_repository", "cannot lock objects"),
                                             ("own_s3_repository", "does not have Object Lock enabled")])
def test_a_lock_is_refused_when_the_storage_cannot_hold_one(api, request, storage, reason):
    request.getfixturevalue(storage)
    answer = api("admin").post("/api/v1/policies", LOCKED, format="json")
    assert answer.status_code == 400, answer.content
    assert reason in str(answer.json()["detail"]["lock_mode"])
    existing = Policy.objects.create(name="existing")
    patched = api("admin").patch(f"/api/v1/policies/{existing.pk}",
                                 {"lock_mode": "compliance", "lock_days": 7}, format="json")
    assert patched.status_code == 400, patched.content
    assert Policy.objects.get(pk=existing.pk).lock_mode == ""
    # turning a lock off, or changing other fields, needs no lock-capable storage
    assert api("admin").patch(f"/api/v1/policies/{existing.pk}", {"description": "x", "lock_mode": "",
                                                                  "lock_days": 0}, format="json").status_code == 200


def test_a_lock_is_accepted_on_a_bucket_with_object_lock(api, own_s3_lock_repository):
    answer = api("admin").post("/api/v1/policies", LOCKED, format="json")
    assert answer.status_code == 201, answer.content
    assert (answer.json()["lock_mode"], answer.json()["lock_days"]) == ("governance", 30)
    assert api("read").get(f"/api/v1/policies/{answer.json()['id']}").json()["lock_days"] == 30


# --- the threat: a stolen admin token ------------------------------------------------------------
def test_a_stolen_admin_token_cannot_destroy_a_locked_backup(api, make_volume, own_s3_lock_repository,
                                                             sent_messages, operator):
    policy = Policy.objects.create(**LOCKED)
    volume = make_volume("vol-locked", files={"data.bin": os.urandom(300_000), "dir/note.txt": b"keep me"},
                         policy=policy)
    original = digests(volume.path)
    first = back_up(volume)
    assert first.locked_until > timezone.now() + timedelta(days=29)
    shown = api("read").get(f"/api/v1/backups/{first.pk}").json()
    assert shown["locked_until"] and shown["locked_until"].startswith(str(first.locked_until.date()))

    # the attacker's API calls: delete the backup, shorten the policy, then prune
    admin = api("admin")
    refused = admin.delete(f"/api/v1/backups/{first.pk}")
    assert refused.status_code == 409, refused.content
    assert refused.json()["code"] == "backup_locked"
    assert refused.json()["detail"]["locked_until"]
    assert admin.patch(f"/api/v1/policies/{policy.pk}", {"lock_mode": "", "lock_days": 0},
                       format="json").status_code == 200
    Path(volume.path, "data.bin").write_bytes(os.urandom(300_000))
    newest = back_up(volume)  # unlocked now: the policy lost its lock
    assert newest.locked_until is None
    prune = services.start_prune(policy=policy, dry_run=False)
    assert runners.execute(prune.pk) == JobStatus.SUCCEEDED
    result = Job.objects.get(pk=prune.pk).result
    assert first.snapshot_id in result["locked"]["vol-locked"]
    assert result["forgotten"] == {"vol-locked": []}
    assert result["prune"]["packs_deleted"] == 0
    assert f"<code>{first.snapshot_id[:8]}</code> (until" in (
        operator.get(f"/admin/backups/job/{prune.pk}/progress/").content.decode())

    # even with the catalog row doctored, the repository itself refuses
    Backup.objects.filter(pk=first.pk).update(locked_until=None)
    again = admin.delete(f"/api/v1/backups/{first.pk}")
    assert again.status_code == 409 and again.json()["code"] == "backup_locked", again.content
    first.refresh_from_db()
    assert first.forgotten_at is None

    restore = services.start_restore(first, new_volume_name="vol-restored")
    assert runners.execute(restore.pk) == JobStatus.SUCCEEDED, Job.objects.get(pk=restore.pk).error
    from volumes.models import Volume

    assert digests(Volume.objects.get(name="vol-restored").path) == original
    repository = open_repository()
    try:
        assert first.snapshot_id in repository.list_snapshot_ids()
    finally:
        repository.close()


def test_a_backup_under_a_locking_policy_on_a_local_repository_fails_clearly(make_volume, own_repository,
                                                                             sent_messages):
    policy = Policy.objects.create(**LOCKED)  # stored behind the API's back: the runner still refuses
    volume = make_volume("vol-local", files={"a": b"a"}, policy=policy)
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.FAILED
    job = Job.objects.get(pk=backup.job_id)
    assert job.error_code == "object_lock_unsupported" and "cannot lock objects" in job.error


def test_the_admin_shows_lock_state_and_validates_the_policy_lock(operator, make_volume, own_repository):
    fields = {"name": "locked-form", "description": "", "enabled": "on", "schedule": "30 2 * * *",
              "timezone": "UTC", "retention": '{"keep_last": 3}', "rpo_hours": 24, "verify_schedule": "",
              "verify_percent": 10, "prune_schedule": "", "keep_good": 2, "lock_mode": "compliance",
              "lock_days": 30}
    refused = operator.post("/admin/backups/policy/add/", fields)
    assert refused.status_code == 200
    assert "cannot lock objects" in str(refused.context["adminform"].form.errors["lock_mode"])
    assert operator.post("/admin/backups/policy/add/", {**fields, "lock_mode": "", "lock_days": ""}).status_code == 302
    volume = make_volume("vol-shown")
    Backup.objects.create(volume=volume, volume_name=volume.name, status="completed", snapshot_id="s" * 64,
                          locked_until=timezone.now() + timedelta(days=3))
    page = operator.get("/admin/backups/backup/").content.decode()
    assert "locked until" in page


def test_a_redelivered_locked_backup_adopts_its_snapshot_with_the_lock_it_has(make_volume, own_s3_lock_repository,
                                                                              sent_messages, settings):
    policy = Policy.objects.create(**LOCKED)
    volume = make_volume("vol-adopt", files={"a.txt": b"alpha"}, policy=policy)
    backup = back_up(volume)
    locked_until = backup.locked_until
    # the worker "died" after the engine committed the snapshot, before the catalog update
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 5)
    Job.objects.filter(pk=backup.job_id).update(status=JobStatus.RUNNING, heartbeat_at=stale, worker="gone:1",
                                                finished_at=None)
    Backup.objects.filter(pk=backup.pk).update(status="running", snapshot_id="", stats={}, locked_until=None)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED
    backup.refresh_from_db()
    assert Job.objects.get(pk=backup.job_id).result["adopted"] is True
    assert backup.locked_until == locked_until
