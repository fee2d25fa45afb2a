"""Beat or workers down at 18:00 for days: on recovery, one backup per volume, not one per tick."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django_celery_beat.models import PeriodicTask

from backups.models import Backup, Job, JobKind, Policy
from backups.scheduling import fanout, rpo
from backups.scheduling.sync import periodic_task_name
from volumes.models import Volume

pytestmark = pytest.mark.django_db
UTC = timezone.utc
DAY0_TICK = datetime(2026, 7, 10, 16, 0, tzinfo=UTC)  # 18:00 Europe/Berlin (CEST)


@pytest.fixture
def policy(db):
    return Policy.objects.create(name="nightly", schedule="0 18 * * *", timezone="Europe/Berlin", rpo_hours=24)


@pytest.fixture
def backed_up_volumes(policy, make_volume, fixed_clock, finish_backups):
    """Three volumes of the policy, created long ago, with day 0's backup completed at 18:05."""
    volumes = [make_volume(name, policy=policy) for name in ("a", "b", "c")]
    Volume.objects.update(created_at=DAY0_TICK - timedelta(days=30))
    fixed_clock.set(DAY0_TICK)
    assert len(fanout.fan_out_backups(policy.pk).started) == 3
    finish_backups(DAY0_TICK + timedelta(minutes=5))
    return volumes


def backups_started_after_day0() -> int:
    return Job.objects.filter(kind=JobKind.BACKUP).count() - 3


def test_beat_down_three_days_gives_one_catch_up_backup_per_volume(policy, backed_up_volumes, fixed_clock):
    # Beat and workers were down from day 0 19:00 to day 3 19:30: three 18:00 ticks missed.
    recovery = DAY0_TICK + timedelta(days=3, hours=3, minutes=30)
    fixed_clock.set(recovery)

    # Recovery: the RPO catch-up (every 5 min) and beat's single late run of the missed crontab
    # arrive in either order, and the catch-up runs again before the backups finish.
    rpo.catch_up()
    fanout.fan_out_backups(policy.pk)
    fixed_clock.advance(timedelta(minutes=5))
    rpo.catch_up()

    assert backups_started_after_day0() == 3
    recovered = Job.objects.filter(kind=JobKind.BACKUP).exclude(idempotency_key__contains="2026-07-10")
    assert {job.volume_id for job in recovered} == {volume.pk for volume in backed_up_volumes}
    assert all("2026-07-13T16:00:00+00:00" in job.idempotency_key for job in recovered)


def test_beat_runs_a_missed_crontab_once_on_recovery(policy, backed_up_volumes, fixed_clock):
    """django-celery-beat's own schedule: after three missed days, due once, then not again."""
    schedule = PeriodicTask.objects.get(name=periodic_task_name(policy.pk, "backup")).crontab.schedule
    schedule.nowfun = lambda: fixed_clock.now().astimezone(schedule.tz)
    fixed_clock.set(DAY0_TICK + timedelta(days=3, hours=3))
    due, _ = schedule.is_due(DAY0_TICK)
    assert due
    fanout.fan_out_backups(policy.pk)
    due_again, _ = schedule.is_due(fixed_clock.now())
    assert not due_again
    assert backups_started_after_day0() == 3


def test_catch_up_after_the_recovered_backups_finished_starts_nothing(policy, backed_up_volumes, fixed_clock,
                                                                     finish_backups):
    fixed_clock.set(DAY0_TICK + timedelta(days=3, hours=3))
    assert len(rpo.catch_up().started) == 3
    finish_backups(fixed_clock.now() + timedelta(minutes=2))
    fixed_clock.advance(timedelta(minutes=10))
    assert rpo.catch_up().started == []
    # Beat's late run of the missed tick comes last: the tick's backups exist already.
    assert fanout.fan_out_backups(policy.pk).started == []
    assert backups_started_after_day0() == 3


def test_catch_up_leaves_volumes_within_their_rpo_alone(policy, backed_up_volumes, fixed_clock):
    fixed_clock.set(DAY0_TICK + timedelta(hours=20))  # newest backup is 19 h 55 min old, RPO 24 h
    assert rpo.catch_up().started == []
    volume = backed_up_volumes[0]
    volume.rpo_hours_override = 12  # this one volume promises more
    volume.save()
    started = rpo.catch_up().started
    assert [Job.objects.get(pk=job_id).volume_id for job_id in started] == [volume.pk]


def test_a_never_backed_up_volume_counts_from_its_creation(policy, make_volume, fixed_clock):
    fresh = make_volume("fresh", policy=policy)
    fixed_clock.set(fresh.created_at + timedelta(hours=1))
    assert rpo.catch_up().started == []
    fixed_clock.set(fresh.created_at + timedelta(hours=25))
    assert len(rpo.catch_up().started) == 1
    assert Backup.objects.get(volume=fresh).trigger == "schedule"


def test_catch_up_skips_disabled_policies(policy, backed_up_volumes, fixed_clock):
    policy.enabled = False
    policy.save()
    fixed_clock.set(DAY0_TICK + timedelta(days=3))
    assert rpo.catch_up().started == []


def test_a_failed_scheduled_backup_gets_one_catch_up_not_one_every_five_minutes(policy, make_volume, fixed_clock):
    from backups import jobs

    make_volume("flaky", policy=policy)
    Volume.objects.update(created_at=DAY0_TICK - timedelta(days=30))
    fixed_clock.set(DAY0_TICK)
    scheduled = Job.objects.get(pk=fanout.fan_out_backups(policy.pk).started[0])
    jobs.fail(scheduled, "S3 said no", "storage_unavailable")

    fixed_clock.advance(timedelta(hours=1))
    first = rpo.catch_up().started
    assert len(first) == 1
    assert Job.objects.get(pk=first[0]).idempotency_key.startswith("rpo:")
    jobs.fail(Job.objects.get(pk=first[0]), "S3 still says no", "storage_unavailable")
    for _ in range(3):
        fixed_clock.advance(timedelta(minutes=5))
        assert rpo.catch_up().started == []
    assert Job.objects.count() == 2
