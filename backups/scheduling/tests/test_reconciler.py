"""The reconciler with an injected clock: lost messages are re-sent, dead workers' jobs are
requeued or failed with a reason. Messages are captured at `jobs.publish.publisher` (the broker side is
covered by tests/faults with real Redis and workers)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups import jobs
from backups.models import Backup, Job, JobStatus
from backups.scheduling import reconciler
from backups.scheduling.clock import FixedClock, use_clock

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    from backups.scheduling import broker_probe

    messages = []
    monkeypatch.setattr(jobs.publish, "publisher", lambda job_id, queue, countdown: messages.append((job_id, queue)))
    # No broker to look into: the reconciler decides by age alone (the probe is tested below).
    monkeypatch.setattr(broker_probe, "current_broker_url", lambda: "memory://")
    return messages


@pytest.fixture
def clock_now():
    with use_clock(FixedClock(timezone.now())) as clock:
        yield clock


@pytest.fixture
def settings_fast(settings):
    settings.JOB_RESEND_AFTER_SECONDS = 60
    settings.JOB_STALE_AFTER_SECONDS = 30
    return settings


def make_job(volume, **fields) -> Job:
    from backups import services

    backup = services.trigger_backup(volume, trigger="api")
    Job.objects.filter(pk=backup.job_id).update(**fields)
    return Job.objects.get(pk=backup.job_id)


def test_a_queued_job_whose_message_is_old_is_resent_once(make_volume, sent, clock_now, settings_fast):
    now = clock_now.now()
    lost = make_job(make_volume("lost"), sent_at=now - timedelta(seconds=120))
    never_sent = make_job(make_volume("never"), sent_at=None, created_at=now - timedelta(seconds=300))
    make_job(make_volume("fresh"), sent_at=now - timedelta(seconds=10))
    make_job(make_volume("backing-off"), sent_at=None, created_at=now - timedelta(seconds=300),
             run_after=now + timedelta(seconds=30))

    result = reconciler.reconcile()

    assert sorted(result.resent) == sorted([str(lost.pk), str(never_sent.pk)])
    assert sorted(job_id for job_id, _ in sent) == sorted([str(lost.pk), str(never_sent.pk)])
    assert {queue for _, queue in sent} == {"backup"}
    # sent_at is stamped again, so the next run (a minute later) does not send it again.
    assert reconciler.reconcile(now=now + timedelta(seconds=30)).resent == []


def test_a_running_job_without_heartbeat_is_requeued_and_resent(make_volume, sent, clock_now, settings_fast):
    now = clock_now.now()
    job = make_job(make_volume("v"), status=JobStatus.RUNNING, worker="host:4242", attempts=1,
                   heartbeat_at=now - timedelta(seconds=45), started_at=now - timedelta(seconds=100))
    alive = make_job(make_volume("alive"), status=JobStatus.RUNNING, worker="host:7", attempts=1,
                     heartbeat_at=now - timedelta(seconds=5))

    result = reconciler.reconcile()

    job.refresh_from_db()
    assert result.requeued == [str(job.pk)]
    assert job.status == JobStatus.QUEUED
    assert "stopped heartbeating" in job.error and "host:4242" in job.error
    assert Backup.objects.get(job=job).status == "queued"
    alive.refresh_from_db()
    assert alive.status == JobStatus.RUNNING


def test_a_dead_job_out_of_attempts_fails_with_a_reason(make_volume, sent, clock_now, settings_fast):
    now = clock_now.now()
    job = make_job(make_volume("v"), status=JobStatus.RUNNING, worker="host:4242", attempts=3, max_attempts=3,
                   heartbeat_at=now - timedelta(minutes=5))

    result = reconciler.reconcile()

    job.refresh_from_db()
    assert result.failed == [str(job.pk)]
    assert (job.status, job.error_code) == (JobStatus.FAILED, "worker_lost")
    assert "gave up after 3 attempts" in job.error
    backup = Backup.objects.get(job=job)
    assert backup.status == "failed" and "stopped heartbeating" in backup.error
    assert sent == []


def test_finished_jobs_are_never_touched(make_volume, sent, clock_now, settings_fast):
    now = clock_now.now()
    make_job(make_volume("done"), status=JobStatus.SUCCEEDED, sent_at=now - timedelta(hours=1),
             heartbeat_at=now - timedelta(hours=1))
    assert reconciler.reconcile().as_dict() == {"resent": 0, "waiting": 0, "requeued": 0, "failed": 0}
    assert sent == []


def test_a_job_whose_message_is_still_in_redis_only_waits_its_turn(make_volume, clock_now, settings_fast,
                                                                    monkeypatch):
    """Real Redis: a message naming the job sits in its queue, so nothing is re-sent; once the
    message is gone (a Redis restart), the job is re-sent."""
    import json
    import uuid

    import redis

    from backups.scheduling import broker_probe
    from tests.support.services import REDIS_URL, redis_available, require_service

    require_service("Redis", redis_available(REDIS_URL), REDIS_URL)
    monkeypatch.setattr(broker_probe, "current_broker_url", lambda: REDIS_URL)
    sent = []
    monkeypatch.setattr(jobs.publish, "publisher", lambda job_id, queue, countdown: sent.append(job_id))
    queue = f"probe-test-{uuid.uuid4().hex}"  # a queue of this test only: no worker consumes it
    job = make_job(make_volume("waiting"), queue=queue, sent_at=clock_now.now() - timedelta(minutes=10))
    message = {"headers": {"task": "backups.tasks.run_job", "argsrepr": f"['{job.pk}']"}, "body": "e30="}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.lpush(queue, json.dumps(message))
        result = reconciler.reconcile()
        assert (result.waiting, result.resent, sent) == ([str(job.pk)], [], [])
        client.delete(queue)  # the broker restarted empty
        assert reconciler.reconcile().resent == [str(job.pk)]
        assert sent == [str(job.pk)]
    finally:
        client.delete(queue)
        client.close()


def test_a_message_left_unacknowledged_by_a_killed_worker_does_not_hold_its_job_back(
        make_volume, clock_now, settings_fast, monkeypatch):
    """Real Redis, kombu's own `unacked` layout: a message delivered moments ago means a
    worker is about to run the job; one delivered long ago, while its job is still queued,
    was reserved by a worker that died (kill -9 leaves it there for the visibility timeout,
    hours), so the job is re-sent now."""
    import json
    import time
    import uuid

    import redis

    from backups.scheduling import broker_probe
    from tests.support.services import REDIS_URL, redis_available, require_service

    require_service("Redis", redis_available(REDIS_URL), REDIS_URL)
    monkeypatch.setattr(broker_probe, "current_broker_url", lambda: REDIS_URL)
    sent = []
    monkeypatch.setattr(jobs.publish, "publisher", lambda job_id, queue, countdown: sent.append(job_id))
    job = make_job(make_volume("reserved"), queue=f"probe-test-{uuid.uuid4().hex}",
                   sent_at=clock_now.now() - timedelta(minutes=10))
    message = {"headers": {"task": "backups.tasks.run_job", "argsrepr": f"['{job.pk}']"}, "body": "e30="}
    tag = f"test-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.hset(broker_probe.UNACKED_KEY, tag, json.dumps([message, "", job.queue]))
        client.zadd(broker_probe.UNACKED_INDEX_KEY, {tag: time.time() - 1})
        assert reconciler.reconcile().waiting == [str(job.pk)] and sent == []
        client.zadd(broker_probe.UNACKED_INDEX_KEY,
                    {tag: time.time() - settings_fast.JOB_RESEND_AFTER_SECONDS - 60})
        assert reconciler.reconcile().resent == [str(job.pk)]
        assert sent == [str(job.pk)]
    finally:
        client.hdel(broker_probe.UNACKED_KEY, tag)
        client.zrem(broker_probe.UNACKED_INDEX_KEY, tag)
        client.close()
