"""After a key rotation, a worker process started with the old `REPOSITORY_KEY` in its
environment (a restart without any redeploy) backs up and restores: it opens the repository
with the secret the rotation stored, sealed, in the shared database."""

from __future__ import annotations

from pathlib import Path

import pytest

from backups import services
from backups.engine.backends import LocalBackend
from backups.engine.errors import WrongKey
from backups.engine.repository import Repository
from backups.models import Backup, BackupTrigger, Job, JobStatus
from backups.tests.test_real_worker import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def finished(job_id, worker) -> Job:
    job = wait_until(lambda: (row := Job.objects.get(pk=job_id)).status not in (JobStatus.QUEUED, JobStatus.RUNNING)
                     and row, 60, "the job to finish")
    assert job.status == JobStatus.SUCCEEDED, (job.error, worker.log()[-3000:])
    return job


def test_a_worker_started_after_a_rotation_backs_up_and_restores(api, settings, own_repository, make_volume,
                                                                 celery_worker_factory):
    settings.REPOSITORY_KEY = "cd" * 32
    rotated = api("admin").post("/api/v1/repository-keys/rotate")
    assert rotated.status_code == 201, rotated.json()
    with pytest.raises(WrongKey):
        Repository.open(LocalBackend(str(own_repository)), settings.REPOSITORY_KEY)

    worker = celery_worker_factory()  # its REPOSITORY_KEY is the old secret
    volume = make_volume("vol-rotated", files={"a.txt": b"backed up after the rotation"})
    backup = services.trigger_backup(volume, trigger=BackupTrigger.API)
    finished(backup.job_id, worker)
    restore = services.start_restore(Backup.objects.get(pk=backup.pk), new_volume_name="vol-rotated-copy")
    restored = finished(restore.pk, worker)
    assert (Path(restored.volume.path) / "a.txt").read_bytes() == b"backed up after the rotation"
    assert "REPOSITORY_KEY does not open the repository" in worker.log()
    assert rotated.json()["secret"] not in worker.log()
