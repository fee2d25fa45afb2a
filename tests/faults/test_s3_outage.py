"""S3 (a real moto_server behind a cuttable TCP proxy) unreachable mid-backup: the storage
layer retries, the job retries with backoff, and the backup succeeds once S3 is back - or
fails cleanly with a clear storage error. Never stuck, never a partial snapshot."""

from __future__ import annotations

import time

import pytest

from backups import services
from backups.models import Job, JobStatus
from tests.faults.conftest import FAST_WORKER_ENV, restore_and_compare, run_reconciler_until_finished, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 12


def test_backup_rides_out_an_s3_outage(celery_worker_factory, slow_s3, random_volume, fast_jobs):
    celery_worker_factory(queues=("backup",), env={**FAST_WORKER_ENV, **slow_s3.worker_environment()})
    volume, digests = random_volume("s3-volume", total_mb=30)
    backup = services.trigger_backup(volume, trigger="api")
    wait_for(lambda: Job.objects.get(pk=backup.job_id).progress_done > 0, timeout=40, interval=0.1,
             message="the backup to make progress")
    assert Job.objects.get(pk=backup.job_id).status == JobStatus.RUNNING, "the outage must hit a running backup"

    slow_s3.proxy.down()
    time.sleep(OUTAGE_SECONDS)
    slow_s3.proxy.up()

    job = run_reconciler_until_finished([backup.job_id], timeout=90)[str(backup.job_id)]
    backup.refresh_from_db()
    repository = slow_s3.open_repository()
    try:
        snapshots = repository.snapshots(tags=[f"job:{job.pk}"])
        if job.status == JobStatus.SUCCEEDED:
            assert backup.status == "completed"
            # The outage was felt: a job-level retry, or a backup that waited it out.
            assert job.attempts >= 2 or backup.stats.get("duration_seconds", 0) >= OUTAGE_SECONDS, (
                job.attempts, backup.stats)
            assert [snapshot.id for snapshot in snapshots] == [backup.snapshot_id]
            restore_and_compare(repository, backup.snapshot_id, digests)
        else:
            assert job.status == JobStatus.FAILED
            assert job.error_code and "Traceback" not in job.error, job.error
            assert snapshots == []
        report = repository.verify(read_data_percent=0)
        assert report.ok, report.errors
    finally:
        repository.close()
