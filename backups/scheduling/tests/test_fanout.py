"""Beat's fan-out with an injected clock: one backup per volume per tick, whatever beat does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backups import services
from backups.models import Backup, BackupTrigger, Job, JobKind, Policy
from backups.scheduling import fanout
from backups.scheduling.sync import periodic_task_name

pytestmark = pytest.mark.django_db
UTC = timezone.utc


@pytest.fixture
def berlin(db):
    return Policy.objects.create(name="berlin", schedule="0 18 * * *", timezone="Europe/Berlin")


def test_fan_out_starts_one_scheduled_backup_per_volume_keyed_by_the_tick(berlin, make_volume, fixed_clock):
    first, second = make_volume("a", policy=berlin), make_volume("b", policy=berlin)
    make_volume("other")  # default policy: not this fan-out's business
    fixed_clock.set(datetime(2026, 7, 15, 16, 0, 3, tzinfo=UTC))  # 18:00:03 CEST

    result = fanout.fan_out_backups(berlin.pk)

    assert len(result.started) == 2
    backups = Backup.objects.filter(volume__in=[first, second])
    assert {backup.trigger for backup in backups} == {BackupTrigger.SCHEDULE}
    keys = set(Job.objects.filter(kind=JobKind.BACKUP).values_list("idempotency_key", flat=True))
    assert keys == {f"policy:{berlin.pk}:2026-07-15T16:00:00+00:00:volume:{volume.pk}" for volume in (first, second)}
    assert set(Job.objects.values_list("policy", flat=True)) == {berlin.pk}


def test_a_second_delivery_of_the_same_tick_starts_nothing(berlin, make_volume, fixed_clock, finish_backups):
    make_volume("a", policy=berlin)
    fixed_clock.set(datetime(2026, 7, 15, 16, 0, tzinfo=UTC))
    assert len(fanout.fan_out_backups(berlin.pk).started) == 1
    finish_backups(fixed_clock.now() + timedelta(minutes=1))
    fixed_clock.advance(timedelta(minutes=30))  # a redelivered or duplicated beat message

    again = fanout.fan_out_backups(berlin.pk)

    assert again.started == []
    assert again.skipped == {"a": "already started for this tick"}
    assert Job.objects.count() == 1


def test_volumes_with_an_active_job_or_not_available_are_skipped_not_errors(berlin, make_volume, fixed_clock):
    busy, idle = make_volume("busy", policy=berlin), make_volume("idle", policy=berlin)
    make_volume("creating", policy=berlin, status="creating")
    services.trigger_backup(busy, trigger=BackupTrigger.MANUAL, actor="operator")

    result = fanout.fan_out_backups(berlin.pk)

    assert len(result.started) == 1
    assert Job.objects.get(pk=result.started[0]).volume_id == idle.pk
    assert result.skipped == {"busy": "a backup or restore is already active", "creating": "volume is creating"}


def test_the_default_policy_also_covers_volumes_without_a_policy(make_volume, fixed_clock):
    default = Policy.objects.get(is_default=True)
    make_volume("orphan")
    make_volume("explicit", policy=default)
    assert len(fanout.fan_out_backups(default.pk).started) == 2


def test_a_disabled_or_deleted_policy_starts_nothing(berlin, make_volume, fixed_clock):
    make_volume("a", policy=berlin)
    berlin.enabled = False
    berlin.save()
    assert fanout.fan_out_backups(berlin.pk).started == []
    assert fanout.fan_out_backups(987654).started == []
    assert not Job.objects.exists()


def beat_fires(policy: Policy, clock, start: datetime, end: datetime, step: timedelta, on_fire) -> None:
    """Drive django-celery-beat's real schedule for the policy's PeriodicTask from `start` to
    `end`, checking every `step` like beat's loop does; call `on_fire()` each time it is due."""
    from django_celery_beat.models import PeriodicTask

    schedule = PeriodicTask.objects.get(name=periodic_task_name(policy.pk, "backup")).crontab.schedule
    schedule.nowfun = lambda: clock.now().astimezone(schedule.tz)
    last_run = start
    clock.set(start)
    while clock.now() < end:
        clock.advance(step)
        due, _ = schedule.is_due(last_run)
        if due:
            last_run = clock.now()
            on_fire()


@pytest.mark.parametrize("start", [
    datetime(2026, 3, 26, 12, 0, tzinfo=UTC),  # spring forward on Sunday 29 March
    datetime(2026, 10, 22, 12, 0, tzinfo=UTC),  # fall back on Sunday 25 October
])
@pytest.mark.parametrize("hour_minute", ["0 18", "30 2"])
def test_across_a_dst_change_each_day_gets_exactly_one_backup(make_volume, fixed_clock, finish_backups,
                                                              start, hour_minute):
    policy = Policy.objects.create(name="dst", schedule=f"{hour_minute} * * *", timezone="Europe/Berlin")
    make_volume("a", policy=policy)
    fired = []

    def on_fire():
        fired.append(fixed_clock.now())
        fanout.fan_out_backups(policy.pk)
        finish_backups(fixed_clock.now() + timedelta(minutes=5))
        # Even a duplicate delivery after the backup finished must not start a second one.
        fanout.fan_out_backups(policy.pk, now=fixed_clock.now() + timedelta(minutes=20))
        finish_backups(fixed_clock.now() + timedelta(minutes=25))

    beat_fires(policy, fixed_clock, start, start + timedelta(days=5), timedelta(minutes=5), on_fire)

    local_days = [job_tick.astimezone(policy_zone()).date()
                  for job_tick in _ticks_of(Job.objects.filter(kind=JobKind.BACKUP))]
    assert len(local_days) == 5, (fired, local_days)
    assert len(set(local_days)) == 5, "one backup per local day: none doubled, none skipped"


def policy_zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Berlin")


def _ticks_of(job_queryset) -> list[datetime]:
    ticks = []
    for key in job_queryset.values_list("idempotency_key", flat=True):
        tick_text = key.split(":volume:")[0].split(":", 2)[2]
        ticks.append(datetime.fromisoformat(tick_text))
    return sorted(ticks)
