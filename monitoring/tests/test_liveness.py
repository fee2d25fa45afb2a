"""The `components` of /ready: worker liveness from heartbeats, beat liveness from its ticks,
the verify schedule; none of them changes readiness for traffic."""

from __future__ import annotations

import datetime

import pytest

from backups.models import Job, JobKind, JobStatus, Policy
from monitoring import heartbeat, liveness, scheduler
from monitoring.models import SchedulerTick
from tests.support.services import REDIS_URL, redis_available, require_service

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 3, 4, 12, 0, tzinfo=datetime.timezone.utc)  # a Wednesday; injected, no live server


def seconds_ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def test_workers_are_ok_degraded_when_one_went_silent_and_failing_when_none_is_alive(settings):
    settings.JOB_STALE_AFTER_SECONDS = 60
    assert liveness.workers(NOW)["status"] == "failing"
    heartbeat.beat("worker@a", now=seconds_ago(5))
    heartbeat.beat("worker@gone", now=seconds_ago(30))
    heartbeat.mark_stopped("worker@gone", now=seconds_ago(20))  # a clean stop is no problem
    assert liveness.workers(NOW) == {"status": "ok", "alive": 1, "silent": [], "stale_after_seconds": 60}
    heartbeat.beat("worker@b", now=seconds_ago(600))
    report = liveness.workers(NOW)
    assert report["status"] == "degraded" and [entry["worker"] for entry in report["silent"]] == ["worker@b"]
    heartbeat.beat("worker@a", now=seconds_ago(61))
    assert liveness.workers(NOW)["status"] == "failing"


def test_beat_is_ok_while_it_ticks_and_failing_when_stale_stopped_or_never_seen(settings):
    settings.JOB_STALE_AFTER_SECONDS = 60
    assert liveness.beat(NOW)["reason"] == "beat has never ticked"
    scheduler.record_tick(seconds_ago(30), starting=True)
    assert liveness.beat(NOW)["status"] == "ok"
    scheduler.record_tick(seconds_ago(90))
    assert liveness.beat(NOW)["reason"] == "beat's last tick is 90 s old"
    scheduler.record_tick(seconds_ago(1))
    scheduler.record_stop(NOW)
    assert liveness.beat(NOW)["reason"].startswith("beat stopped at ")
    scheduler.record_tick(NOW)  # a restarted beat clears the stop
    assert liveness.beat(NOW)["status"] == "ok" and SchedulerTick.objects.count() == 1


def weekly_policy(created: datetime.datetime) -> Policy:
    policy = Policy.objects.create(name="weekly", verify_schedule="0 3 * * 0")  # Sundays 03:00
    Policy.objects.filter(pk=policy.pk).update(created_at=created)
    Policy.objects.exclude(pk=policy.pk).update(verify_schedule="")
    return policy


def verify_job(status: str, created: datetime.datetime, error: str = "") -> Job:
    job = Job.objects.create(kind=JobKind.VERIFY, status=status, error=error,
                             finished_at=created + datetime.timedelta(minutes=5) if status != JobStatus.RUNNING else None)
    Job.objects.filter(pk=job.pk).update(created_at=created)
    return job


def test_verify_is_late_when_no_verify_started_since_the_due_run():
    last_sunday = datetime.datetime(2026, 3, 1, 3, 0, tzinfo=datetime.timezone.utc)
    weekly_policy(created=last_sunday - datetime.timedelta(days=30))
    report = liveness.verify(NOW)
    assert report["status"] == "failing" and report["schedules"][0]["due_run"] == "2026-03-01T03:00:00Z"
    assert "policy weekly at 2026-03-01T03:00:00Z" in report["reason"]

    verify_job(JobStatus.SUCCEEDED, last_sunday - datetime.timedelta(days=7))
    assert liveness.verify(NOW)["status"] == "failing"
    verify_job(JobStatus.RUNNING, last_sunday + datetime.timedelta(seconds=3))  # a long verify is not late
    assert liveness.verify(NOW)["status"] == "ok"


def test_a_new_policy_is_not_late_and_a_failed_verify_is_named():
    weekly_policy(created=NOW - datetime.timedelta(hours=1))
    assert liveness.verify(NOW)["status"] == "ok"
    failed = verify_job(JobStatus.FAILED, NOW - datetime.timedelta(minutes=30), error="pack 1a2b is damaged")
    report = liveness.verify(NOW)
    assert report["status"] == "failing" and str(failed.pk) in report["reason"] and "damaged" in report["reason"]


def test_no_verify_schedule_is_unscheduled():
    Policy.objects.update(verify_schedule="")
    assert liveness.verify(NOW)["status"] == "unscheduled"


def test_ready_reports_components_without_changing_its_status_code(client, settings):
    require_service("redis", redis_available(REDIS_URL), REDIS_URL)
    settings.CELERY_BROKER_URL = REDIS_URL
    response = client.get("/ready")
    body = response.json()
    assert response.status_code == 200, body  # no worker and no beat: still ready for traffic
    assert body["components"]["workers"]["status"] == "failing"
    assert body["components"]["beat"]["status"] == "failing"
    assert set(body["components"]) == {"workers", "beat", "verify"}


@pytest.mark.django_db(transaction=True)  # the scheduler closes old connections, as beat does
def test_the_beat_scheduler_records_its_first_tick_and_its_clean_stop(settings):
    from storage_platform.celery import app

    settings.JOB_HEARTBEAT_SECONDS = 3600
    beat_scheduler = scheduler.DatabaseScheduler(app=app, lazy=True)
    assert beat_scheduler.tick() <= 3600
    first = SchedulerTick.objects.get()
    assert first.stopped_at is None and first.started_at == first.last_tick_at
    beat_scheduler.tick()  # within JOB_HEARTBEAT_SECONDS: no second write
    assert SchedulerTick.objects.get().last_tick_at == first.last_tick_at
    beat_scheduler.close()
    assert SchedulerTick.objects.get().stopped_at is not None
