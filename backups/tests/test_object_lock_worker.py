"""S3 Object Lock as deployed: the API process and a real Celery worker (restarted between
steps) on one moto_server bucket with Object Lock, configured through the S3_* environment.
A stolen admin token deletes, weakens the policy and prunes; the locked backup still restores
byte for byte."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from backups import services
from backups.models import Job, JobStatus, Policy

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_finished(job_id, worker) -> Job:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            assert job.status == JobStatus.SUCCEEDED, (job.error_code, job.error, worker.log()[-3000:])
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish\n{worker.log()[-3000:]}")


def digests(root) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in Path(root).rglob("*") if path.is_file()}


def test_a_locked_backup_survives_a_stolen_admin_token_across_worker_restarts(
        api, make_volume, own_s3_lock_repository, celery_worker_factory):
    bucket = own_s3_lock_repository
    worker = celery_worker_factory(env=bucket.server.environment(bucket.name))
    admin = api("admin")
    created = admin.post("/api/v1/policies", {"name": "immutable", "retention": {"keep_last": 1},
                                              "lock_mode": "compliance", "lock_days": 7}, format="json")
    assert created.status_code == 201, created.content
    policy = Policy.objects.get(pk=created.json()["id"])
    volume = make_volume("vol-immutable", files={"db.bin": os.urandom(2_000_000), "etc/conf": b"x = 1\n"},
                         policy=policy)
    original = digests(volume.path)

    triggered = api("backup").post(f"/api/v1/volumes/{volume.pk}/backups")
    assert triggered.status_code == 202, triggered.content
    locked = triggered.json()
    wait_finished(locked["job"], worker)
    shown = api("read").get(f"/api/v1/backups/{locked['id']}").json()
    assert shown["locked_until"] is not None
    snapshot = shown["snapshot_id"]
    head = bucket.client.head_object(Bucket=bucket.name, Key=f"repository/snapshots/{snapshot}")
    assert head["ObjectLockMode"] == "COMPLIANCE"

    # the attacker: delete, drop the lock and retention, back up again, prune
    refused = admin.delete(f"/api/v1/backups/{locked['id']}")
    assert refused.status_code == 409 and refused.json()["code"] == "backup_locked", refused.content
    assert admin.patch(f"/api/v1/policies/{policy.pk}", {"lock_mode": "", "lock_days": 0},
                       format="json").status_code == 200
    worker.restart()
    Path(volume.path, "db.bin").write_bytes(os.urandom(2_000_000))
    newer = api("backup").post(f"/api/v1/volumes/{volume.pk}/backups").json()
    wait_finished(newer["job"], worker)
    assert api("read").get(f"/api/v1/backups/{newer['id']}").json()["locked_until"] is None
    for _ in range(2):  # a second prune finds nothing more to do and still keeps the snapshot
        prune = services.start_prune(policy=Policy.objects.get(pk=policy.pk))
        result = wait_finished(prune.pk, worker).result
        assert snapshot in result["locked"]["vol-immutable"], result
    assert admin.delete(f"/api/v1/backups/{locked['id']}").status_code == 409

    worker.restart()
    restore = admin.post(f"/api/v1/backups/{locked['id']}/restore", {"new_volume_name": "vol-back"},
                         format="json")
    assert restore.status_code == 202, restore.content
    wait_finished(restore.json()["id"], worker)
    from volumes.models import Volume

    assert digests(Volume.objects.get(name="vol-back").path) == original
