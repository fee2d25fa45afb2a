"""Jobs on a real worker process, interrupted half-way:

* its pool process killed with SIGKILL: Celery's main process requeues the message (acks_late +
  reject_on_worker_lost), the new pool process takes the job over from the dead one at once,
  and the backup ends `succeeded` with one snapshot;
* cancelled through the API: the worker stops at the next chunk and no snapshot exists.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from backups import services
from backups.models import BackupTrigger, Job, JobStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024
#: Random (incompressible) data spanning six 16 MiB packs. The engine reads ~80 MiB ahead of
#: storage (2 packs uploading, a full pack waiting for an upload slot, the open pack, 16 MiB
#: queued for the workers: measured), so the file must be above that for the backup to be
#: still *reading* (progress_done < progress_total, cancel checked per chunk) when the test acts.
DATA_BYTES = 96 * MIB
#: The worker uploads at 8 MiB/s (BACKUP_UPLOAD_LIMIT_KIB): its first two packs are stored
#: only after ~4 s, so reading stops at ~80 MiB until then, and the whole backup lasts ~12 s
#: however fast the machine is. The first 1 s heartbeat records progress well inside that.
WORKER_ENV = {"JOB_HEARTBEAT_SECONDS": "1", "BACKUP_UPLOAD_LIMIT_KIB": str(8 * 1024)}


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def big_volume(make_volume, name: str):
    volume = make_volume(name)
    with open(Path(volume.path) / "big.bin", "wb") as handle:
        for _ in range(DATA_BYTES // (4 * 1024 * 1024)):
            handle.write(os.urandom(4 * 1024 * 1024))
    return volume


def wait_mid_backup(backup) -> Job:
    def mid_backup():
        job = Job.objects.get(pk=backup.job_id)
        assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING), f"finished too early: {job.status}"
        return job if job.status == JobStatus.RUNNING and job.progress_done > 0 else None

    return wait_until(mid_backup, 60, "the backup to report progress")


def wait_finished(job_id, worker) -> Job:
    try:
        return wait_until(lambda: (job := Job.objects.get(pk=job_id)).status not in
                          (JobStatus.QUEUED, JobStatus.RUNNING) and job, 120, "the job to finish")
    except AssertionError as timed_out:  # say what the worker saw, not only that time ran out
        job = Job.objects.get(pk=job_id)
        raise AssertionError(f"{timed_out}; job {job.status} on {job.worker}, attempts {job.attempts}, "
                             f"heartbeat {job.heartbeat_at}\n{worker.log()[-4000:]}") from None


def snapshots_of_job(job_id) -> list[str]:
    from backups.storage import open_repository

    repository = open_repository()
    try:
        return [snapshot.id for snapshot in repository.snapshots(tags=[f"job:{job_id}"])]
    finally:
        repository.close()


def test_a_backup_whose_worker_process_is_killed_is_redelivered_and_succeeds_once(make_volume,
                                                                                  celery_worker_factory):
    worker = celery_worker_factory(env=WORKER_ENV)
    backup = services.trigger_backup(big_volume(make_volume, "vol-kill"), trigger=BackupTrigger.API)
    running = wait_mid_backup(backup)
    killed = worker.kill_children(signal.SIGKILL)
    assert killed, "the worker had no pool process to kill"
    assert running.progress_done < running.progress_total

    finished = wait_finished(backup.job_id, worker)
    assert finished.status == JobStatus.SUCCEEDED, (finished.error, worker.log()[-3000:])
    assert finished.attempts == 2 and finished.worker != running.worker
    backup.refresh_from_db()
    assert backup.status == "completed" and backup.stats["bytes_read"] == DATA_BYTES

    assert snapshots_of_job(backup.job_id) == [backup.snapshot_id]


def test_a_running_backup_cancelled_through_the_api_stops_and_leaves_no_snapshot(make_volume, api,
                                                                                 celery_worker_factory):
    worker = celery_worker_factory(env=WORKER_ENV)
    backup = services.trigger_backup(big_volume(make_volume, "vol-cancel"), trigger=BackupTrigger.API)
    wait_mid_backup(backup)
    response = api("backup").post(f"/api/v1/jobs/{backup.job_id}/cancel")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    finished = wait_finished(backup.job_id, worker)
    assert finished.status == JobStatus.CANCELLED and finished.progress_done < finished.progress_total
    backup.refresh_from_db()
    assert backup.status == "cancelled" and backup.snapshot_id == ""
    assert snapshots_of_job(backup.job_id) == []
