"""kill -9 of a whole worker (main process and pool) in the middle of a backup: its message
stays unacknowledged in Redis for the visibility timeout (hours), so only the reconciler can
save the job. It must end succeeded or failed with a reason, never stuck; the repository holds
at most one snapshot for the job, it restores bit for bit, and the repository verifies.

(Killing only the pool process - the parent requeues at once - is covered by
backups/tests/test_real_worker.py.)"""

from __future__ import annotations

import signal

import pytest

from backups import services
from backups.models import Backup, Job, JobStatus
from tests.faults.conftest import FAST_WORKER_ENV, restore_and_compare, run_reconciler_until_finished, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_until_mid_backup(job_id) -> Job:
    """Until the job runs and its heartbeat reported some, but not all, bytes."""
    def mid_way():
        job = Job.objects.get(pk=job_id)
        assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING), f"finished before the fault: {job.status}"
        return job if job.status == JobStatus.RUNNING and 0 < job.progress_done < job.progress_total else None

    return wait_for(mid_way, timeout=40, interval=0.1, message="the backup to be half-way")


def test_backup_survives_kill_9_of_its_whole_worker(celery_worker_factory, random_volume, slow_s3, fast_jobs):
    worker = celery_worker_factory(queues=("backup",), env={**FAST_WORKER_ENV, **slow_s3.worker_environment()})
    volume, digests = random_volume("big", total_mb=30)
    backup = services.trigger_backup(volume, trigger="api")
    first_worker = wait_until_mid_backup(backup.job_id).worker

    worker.kill(signal.SIGKILL)  # parent and pool: the message stays unacked in Redis
    assert Job.objects.get(pk=backup.job_id).status == JobStatus.RUNNING  # orphaned...
    worker.start()  # ...until a worker is back and the reconciler notices the silence

    job = run_reconciler_until_finished([backup.job_id], timeout=60)[str(backup.job_id)]
    backup.refresh_from_db()
    repository = slow_s3.open_repository()
    try:
        snapshots = repository.snapshots(tags=[f"job:{job.pk}"])
        if job.status == JobStatus.SUCCEEDED:
            assert job.attempts >= 2 and job.worker != first_worker
            assert backup.status == "completed"
            assert [snapshot.id for snapshot in snapshots] == [backup.snapshot_id], "exactly one snapshot"
            restore_and_compare(repository, backup.snapshot_id, digests)
        else:
            assert job.status == JobStatus.FAILED and job.error, f"failed without a reason: {job}"
            assert snapshots == [], "a failed job must leave no snapshot"
        # The repository is consistent whatever happened (a dead attempt leaves only
        # unreferenced packs, which verify tolerates and prune removes).
        report = repository.verify(read_data_percent=0)
        assert report.ok, report.errors
    finally:
        repository.close()
    assert Backup.objects.filter(volume=volume).count() == 1
