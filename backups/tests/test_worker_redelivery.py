"""A real worker's pool process killed with SIGKILL in the middle of a backup: Celery's main
process requeues the message (acks_late + reject_on_worker_lost), the new pool process takes
the job over from the dead one at once, and the backup ends `succeeded` with one snapshot."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from backups import services
from backups.models import BackupTrigger, Job, JobStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DATA_BYTES = 200 * 1024 * 1024  # random, so the engine needs a few seconds for it


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_backup_whose_worker_process_is_killed_is_redelivered_and_succeeds_once(make_volume,
                                                                                  celery_worker_factory):
    worker = celery_worker_factory(env={"JOB_HEARTBEAT_SECONDS": "1"})
    volume = make_volume("vol-kill")
    with open(Path(volume.path) / "big.bin", "wb") as handle:
        for _ in range(DATA_BYTES // (4 * 1024 * 1024)):
            handle.write(os.urandom(4 * 1024 * 1024))
    backup = services.trigger_backup(volume, trigger=BackupTrigger.API)

    def mid_backup():
        job = Job.objects.get(pk=backup.job_id)
        assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING), f"finished before the kill: {job.status}"
        return job if job.status == JobStatus.RUNNING and job.progress_done > 0 else None

    running = wait_until(mid_backup, 60, "the backup to report progress")
    killed = worker.kill_children(signal.SIGKILL)
    assert killed, "the worker had no pool process to kill"
    assert running.progress_done < running.progress_total

    finished = wait_until(lambda: (job := Job.objects.get(pk=backup.job_id)).status not in
                          (JobStatus.QUEUED, JobStatus.RUNNING) and job, 120, "the job to finish")
    assert finished.status == JobStatus.SUCCEEDED, (finished.error, worker.log()[-3000:])
    assert finished.attempts == 2 and finished.worker != running.worker
    backup.refresh_from_db()
    assert backup.status == "completed" and backup.stats["bytes_read"] == DATA_BYTES

    from backups.storage import open_repository

    repository = open_repository()
    try:
        assert [snapshot.id for snapshot in repository.snapshots(tags=[f"job:{backup.job_id}"])] == [backup.snapshot_id]
    finally:
        repository.close()
