"""Restore drills on the policy's own schedule: one drill per tick, of the newest backup of one
volume of the policy chosen at random among those with a completed backup."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django_celery_beat.models import PeriodicTask

from backups import jobs
from backups.models import Backup, Job, JobKind, Policy
from backups.scheduling import fanout, sync
from backups.tests.test_api_backups import completed_backup

pytestmark = pytest.mark.django_db
UTC = timezone.utc
WEDNESDAY_0400_BERLIN = datetime(2026, 7, 15, 2, 0, 3, tzinfo=UTC)  # 04:00:03 CEST


@pytest.fixture
def policy(db):
    return Policy.objects.create(name="drilled", drill_schedule="0 4 * * 3", timezone="Europe/Berlin")


class Chooser:
    """Stands in for `random.choice`: records what it was offered and takes `pick`."""

    def __init__(self, pick):
        self.pick, self.offered = pick, []

    def __call__(self, candidates):
        self.offered.append(list(candidates))
        return self.pick


def test_a_scheduled_drill_takes_the_newest_backup_of_one_volume_of_the_policy(policy, make_volume, fixed_clock):
    fixed_clock.set(WEDNESDAY_0400_BERLIN)
    first, second = make_volume("vol-1", policy=policy), make_volume("vol-2", policy=policy)
    make_volume("vol-never-backed-up", policy=policy)
    completed_backup(make_volume("vol-other-policy"), "snap-other")
    completed_backup(first, "snap-1")
    older = completed_backup(second, "snap-2-old")
    Backup.objects.filter(pk=older.pk).update(completed_at=older.completed_at - timedelta(days=1))
    newest = completed_backup(second, "snap-2-new")
    choose = Chooser(pick=second.pk)

    job = Job.objects.get(pk=fanout.start_policy_drill(policy.pk, choose=choose))

    assert choose.offered == [sorted([first.pk, second.pk], key=str)]
    assert (job.kind, job.queue, job.policy_id, job.volume_id) == (JobKind.DRILL, "maintenance", policy.pk, second.pk)
    assert job.params["backup"] == str(newest.pk) and job.created_by == "scheduler"
    assert job.idempotency_key == f"policy:{policy.pk}:drill:2026-07-15T02:00:00+00:00"


def test_one_drill_per_tick_even_if_delivered_twice_and_none_while_one_is_active(policy, make_volume, fixed_clock):
    completed_backup(make_volume("vol-1", policy=policy))
    fixed_clock.set(WEDNESDAY_0400_BERLIN)
    first = fanout.start_policy_drill(policy.pk)
    assert first is not None
    fixed_clock.advance(timedelta(minutes=2))
    assert fanout.start_policy_drill(policy.pk) is None  # same tick
    fixed_clock.advance(timedelta(days=7))
    assert fanout.start_policy_drill(policy.pk) is None  # the first one is somehow still queued
    jobs.succeed(Job.objects.get(pk=first), {})
    assert fanout.start_policy_drill(policy.pk) is not None
    assert Job.objects.filter(kind=JobKind.DRILL).count() == 2


def test_no_drill_without_a_completed_backup_an_enabled_policy_or_a_drill_schedule(policy, make_volume, fixed_clock):
    fixed_clock.set(WEDNESDAY_0400_BERLIN)
    make_volume("vol-empty", policy=policy)
    assert fanout.start_policy_drill(policy.pk) is None
    completed_backup(make_volume("vol-1", policy=policy))
    policy.drill_schedule = ""
    policy.save()
    assert fanout.start_policy_drill(policy.pk) is None
    policy.drill_schedule, policy.enabled = "0 4 * * 3", False
    policy.save()
    assert fanout.start_policy_drill(policy.pk) is None
    assert not Job.objects.filter(kind=JobKind.DRILL).exists()


def test_the_default_policy_drills_volumes_without_a_policy_too(make_volume, fixed_clock):
    default = Policy.objects.get(is_default=True)
    backup = completed_backup(make_volume("vol-unassigned"))
    fixed_clock.set(datetime(2026, 7, 15, 4, 0, 1, tzinfo=UTC))  # the default drill: Wednesday 04:00 UTC
    job = Job.objects.get(pk=fanout.start_policy_drill(default.pk))
    assert job.params["backup"] == str(backup.pk)


def test_the_drill_schedule_is_a_beat_task_kept_in_step_with_the_policy(policy):
    periodic = PeriodicTask.objects.get(name=sync.periodic_task_name(policy.pk, "drill"))
    assert periodic.task == sync.TASK_POLICY_DRILL and (periodic.crontab.hour, periodic.crontab.day_of_week) == ("4", "3")
    crontab = periodic.crontab
    crontab.hour = "5"
    crontab.save()  # an operator edits the crontab in the admin
    policy.refresh_from_db()
    assert policy.drill_schedule == "0 5 * * 3"
    policy.drill_schedule = ""
    policy.save()
    assert not PeriodicTask.objects.filter(name=sync.periodic_task_name(policy.pk, "drill")).exists()


def test_the_policy_api_validates_and_returns_the_drill_schedule(api, db):
    created = api("admin").post("/api/v1/policies", {"name": "weekly-drill", "drill_schedule": "30 5 * * 1"},
                                format="json")
    assert created.status_code == 201, created.content
    assert created.json()["drill_schedule"] == "30 5 * * 1"
    default = api("admin").post("/api/v1/policies", {"name": "default-drill"}, format="json").json()
    assert default["drill_schedule"] == "0 4 * * 3"
    refused = api("admin").patch(f"/api/v1/policies/{default['id']}", {"drill_schedule": "0 4 L * *"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "validation_error"
    assert "drill_schedule" in refused.json()["detail"]
    never = api("admin").patch(f"/api/v1/policies/{default['id']}", {"drill_schedule": ""}, format="json")
    assert never.status_code == 200 and never.json()["drill_schedule"] == ""
