"""A kill -9 campaign: twenty times, a whole worker (main process and pool) is killed with
SIGKILL in the middle of a backup and started again, while earlier victims are recovered
by the reconciler. At the end every job has ended (succeeded or failed with a reason, never
stuck), each succeeded job has exactly one snapshot and each failed one none, no snapshot
belongs to no job (nothing partial was committed), and the whole repository verifies with
every pack read."""

from __future__ import annotations

import signal
import time

import pytest

from backups import services
from backups.models import Backup, Job, JobStatus
from backups.scheduling.reconciler import reconcile
from tests.faults.conftest import (FAST_WORKER_ENV, run_reconciler_until_finished,
                                   wait_for, write_random_files)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(900)]

ROUNDS = 20
VOLUME_MB = 12  # about 3 s through the slow link: long enough to be caught half-way


def _a_backup_half_way(job_ids) -> Job | None:
    """A running job of the campaign whose heartbeat reported some, not all, bytes."""
    for job in Job.objects.filter(pk__in=job_ids, status=JobStatus.RUNNING):
        if 0 < job.progress_done < job.progress_total:
            return job
    return None


def test_twenty_kill_9s_mid_backup_leave_every_job_finished_and_the_repository_sound(
        celery_worker_factory, make_volume, slow_s3, fast_jobs):
    from pathlib import Path

    worker = celery_worker_factory(queues=("backup",), concurrency=2,
                                   env={**FAST_WORKER_ENV, **slow_s3.worker_environment()})
    job_ids, killed_mid_backup = [], 0
    for round_number in range(ROUNDS):
        volume = make_volume(f"campaign-{round_number:02d}")
        write_random_files(Path(volume.path), VOLUME_MB, file_mb=4)
        job_ids.append(services.trigger_backup(volume, trigger="api").job_id)

        last_reconcile = [0.0]

        def victim():
            # Earlier victims are requeued once their heartbeat is stale: play beat once a
            # second (its real period is longer), and look for a half-way backup in between.
            if time.monotonic() - last_reconcile[0] >= 1.0:
                reconcile()
                last_reconcile[0] = time.monotonic()
            return _a_backup_half_way(job_ids)

        wait_for(victim, timeout=60, interval=0.1, message=f"a backup half-way (round {round_number})")
        worker.kill(signal.SIGKILL)
        killed_mid_backup += 1
        worker.start()

    assert killed_mid_backup == ROUNDS
    jobs = run_reconciler_until_finished(job_ids, timeout=240)
    repository = slow_s3.open_repository()
    try:
        snapshots_by_job = {}
        for snapshot in repository.snapshots():
            job_tags = [tag for tag in snapshot.tags if tag.startswith("job:")]
            assert len(job_tags) == 1, f"snapshot {snapshot.id} belongs to no job: {snapshot.tags}"
            snapshots_by_job.setdefault(job_tags[0][4:], []).append(snapshot.id)
        for job_id, job in jobs.items():
            backup = Backup.objects.get(job_id=job_id)
            if job.status == JobStatus.SUCCEEDED:
                assert snapshots_by_job.get(job_id) == [backup.snapshot_id], job_id
                assert backup.status == "completed"
            else:
                assert job.status == JobStatus.FAILED and job.error, f"no reason: {job}"
                assert job_id not in snapshots_by_job, "a failed job left a snapshot"
        assert set(snapshots_by_job) <= set(jobs)
        report = repository.verify(read_data_percent=100)
        assert report.ok, report.errors
    finally:
        repository.close()
    # Jobs killed three times fail (their attempts are used up); the campaign is only
    # meaningful if the others were recovered and completed.
    assert any(job.status == JobStatus.SUCCEEDED for job in jobs.values())
