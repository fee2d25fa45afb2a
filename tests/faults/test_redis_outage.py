"""Redis (the broker) down for 20 s during a run: no job is lost. The running backup finishes
(job state lives in the database), a backup triggered during the outage is written and
re-sent by the reconciler once Redis is back, and the worker reconnects by itself."""

from __future__ import annotations

import time

import pytest

from backups import services
from backups.models import JobStatus
from tests.faults.conftest import FAST_WORKER_ENV, run_reconciler_until_finished, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 20


def test_no_job_is_lost_when_redis_stops_for_20_seconds(celery_worker_factory, private_redis, random_volume,
                                                        slow_s3, fast_jobs):
    from backups.models import Job
    from backups.scheduling.reconciler import reconcile

    celery_worker_factory(queues=("backup",), broker_url=private_redis.url,
                          env={**FAST_WORKER_ENV, **slow_s3.worker_environment()})
    running_volume, _ = random_volume("during", total_mb=20)
    waiting_volume, _ = random_volume("after", total_mb=2)
    during = services.trigger_backup(running_volume, trigger="api")
    wait_for(lambda: Job.objects.get(pk=during.job_id).status == JobStatus.RUNNING, timeout=30,
             message="the first backup to start")

    private_redis.stop()
    stopped_at = time.monotonic()
    assert Job.objects.get(pk=during.job_id).status == JobStatus.RUNNING, "the outage must hit a running job"
    # Triggered while the broker is down: the API still answers, the row is written, the
    # message cannot be.
    after = services.trigger_backup(waiting_volume, trigger="api")
    job = Job.objects.get(pk=after.job_id)
    assert (job.status, job.sent_at) == (JobStatus.QUEUED, None)
    while time.monotonic() - stopped_at < OUTAGE_SECONDS:
        reconcile()  # must not crash while the broker is down
        time.sleep(2)
    private_redis.start()  # empty: every message that was in Redis is gone

    jobs = run_reconciler_until_finished([during.job_id, after.job_id], timeout=60)
    assert {job_id: job.status for job_id, job in jobs.items()} == {
        str(during.job_id): JobStatus.SUCCEEDED, str(after.job_id): JobStatus.SUCCEEDED}
    during.refresh_from_db()
    after.refresh_from_db()
    assert during.status == after.status == "completed"
    assert during.snapshot_id and after.snapshot_id
