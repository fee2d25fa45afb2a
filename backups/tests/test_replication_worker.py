"""Replication through real Celery worker processes: the worker reads the targets from its
environment (`REPLICATION_TARGETS`, as deployed), runs the backup and the replicate job sent
through Redis, and after a restart a second replicate job copies nothing."""

from __future__ import annotations

import json

import pytest

from backups import services
from backups.models import BackupReplica, BackupTrigger, Job, JobStatus, Policy
from backups.tests.test_real_worker import wait_finished
from storage_platform.config import replication_targets

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_backup_then_replicate_on_a_real_worker_and_again_after_a_restart(make_volume, api, own_repository, settings,
                                                                          tmp_path, celery_worker_factory):
    targets = {"dr": {"location": str(tmp_path / "replica")}}
    settings.REPLICATION_TARGETS = replication_targets({"REPLICATION_TARGETS": json.dumps(targets)})
    worker = celery_worker_factory(env={"REPLICATION_TARGETS": json.dumps(targets), "JOB_HEARTBEAT_SECONDS": "1"})
    policy = Policy.objects.create(name="replicated", replication_target="dr")
    volume = make_volume("vol-r", files={"a.txt": b"alpha" * 5000, "b/c.txt": b"gamma"}, policy=policy)

    backup = services.trigger_backup(volume, trigger=BackupTrigger.API)
    assert wait_finished(backup.job_id, worker).status == JobStatus.SUCCEEDED
    backup.refresh_from_db()

    response = api("backup").post(f"/api/v1/policies/{policy.pk}/replicate")
    assert response.status_code == 202, response.json()
    first = wait_finished(response.json()["id"], worker)
    assert first.status == JobStatus.SUCCEEDED, (first.error, worker.log()[-3000:])
    assert list(first.result["copy"]["copied"]) == [backup.snapshot_id]
    assert first.progress_done > 0 and first.worker
    assert BackupReplica.objects.filter(backup=backup, target="dr").exists()

    worker.restart()
    response = api("backup").post(f"/api/v1/policies/{policy.pk}/replicate")
    second = wait_finished(response.json()["id"], worker)
    assert second.status == JobStatus.SUCCEEDED, (second.error, worker.log()[-3000:])
    assert second.result["copy"]["copied"] == {} and second.result["copy"]["blobs_copied"] == 0
    assert Job.objects.filter(kind="replicate").count() == 2
