"""Policy ⇄ django-celery-beat: both directions, time zones, disabling, no loops."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backups.models import Policy
from backups.scheduling import sync

pytestmark = pytest.mark.django_db


def task(policy: Policy, kind: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab").get(name=sync.periodic_task_name(policy.pk, kind))


def test_migrate_registers_the_default_policy_reconciler_and_rpo_catch_up():
    default = Policy.objects.get(is_default=True)
    backup = task(default, "backup")
    assert backup.task == sync.TASK_POLICY_BACKUP
    assert json.loads(backup.kwargs) == {"policy_id": default.pk}
    assert (backup.crontab.minute, backup.crontab.hour, str(backup.crontab.timezone)) == ("0", "18", "UTC")
    system = {t.name: t for t in PeriodicTask.objects.filter(name__startswith="platform:")}
    assert system["platform:reconcile-jobs"].interval.every == 60
    assert system["platform:rpo-catch-up"].interval.every == 300


def test_a_new_policy_gets_four_tasks_in_its_time_zone():
    policy = Policy.objects.create(name="berlin", schedule="0 18 * * *", timezone="Europe/Berlin",
                                   verify_schedule="0 3 * * 0", prune_schedule="0 20 * * *")
    for kind, expected_task, hour in (("backup", sync.TASK_POLICY_BACKUP, "18"),
                                      ("verify", sync.TASK_POLICY_VERIFY, "3"),
                                      ("prune", sync.TASK_POLICY_PRUNE, "20"),
                                      ("drill", sync.TASK_POLICY_DRILL, "4")):  # the default drill schedule
        periodic = task(policy, kind)
        assert periodic.task == expected_task
        assert periodic.crontab.hour == hour
        assert str(periodic.crontab.timezone) == "Europe/Berlin"
        assert periodic.enabled


def test_the_beat_crontab_fires_at_the_same_instant_as_the_platform_model():
    from backups.scheduling import cron

    policy = Policy.objects.create(name="tokyo", schedule="15 18 * * *", timezone="Asia/Tokyo")
    beat_schedule = task(policy, "backup").crontab.schedule
    last_run = datetime(2026, 7, 1, 0, 0, tzinfo=timezone.utc)
    start, remaining, _ = beat_schedule.remaining_delta(last_run)
    beat_next = (start + remaining).astimezone(timezone.utc)
    assert beat_next == cron.next_run(cron.parse("15 18 * * *", "Asia/Tokyo"), last_run) == datetime(
        2026, 7, 1, 9, 15, tzinfo=timezone.utc)


def test_saving_a_policy_updates_its_tasks_and_disabling_disables_them():
    policy = Policy.objects.create(name="p1")
    policy.schedule, policy.timezone = "30 1 * * *", "America/New_York"
    policy.save()
    backup = task(policy, "backup")
    assert (backup.crontab.minute, backup.crontab.hour, str(backup.crontab.timezone)) == ("30", "1", "America/New_York")
    assert str(task(policy, "prune").crontab.timezone) == "America/New_York"

    policy.enabled = False
    policy.save()
    assert not any(task(policy, kind).enabled for kind in ("backup", "verify", "prune"))


def test_an_empty_verify_schedule_removes_the_verify_task():
    policy = Policy.objects.create(name="p2")
    policy.verify_schedule = ""
    policy.save()
    assert not PeriodicTask.objects.filter(name=sync.periodic_task_name(policy.pk, "verify")).exists()
    assert PeriodicTask.objects.filter(name=sync.periodic_task_name(policy.pk, "backup")).exists()


def test_deleting_a_policy_deletes_its_tasks():
    policy = Policy.objects.create(name="gone")
    policy_id = policy.pk
    policy.delete()
    assert not PeriodicTask.objects.filter(name__startswith=f"policy:{policy_id}:").exists()


def test_editing_the_backup_task_crontab_in_the_admin_updates_the_policy():
    policy = Policy.objects.create(name="p3", timezone="UTC")
    backup = task(policy, "backup")
    backup.crontab = CrontabSchedule.objects.create(minute="45", hour="21", timezone="Europe/Paris")
    backup.save()

    policy.refresh_from_db()
    assert (policy.schedule, policy.timezone) == ("45 21 * * *", "Europe/Paris")
    # The time zone follows to the policy's other tasks.
    assert str(task(policy, "prune").crontab.timezone) == "Europe/Paris"


def test_policies_never_share_a_crontab_row_so_editing_one_changes_one_policy():
    first = Policy.objects.create(name="a", schedule="0 2 * * *")
    second = Policy.objects.create(name="b", schedule="0 2 * * *")
    own = task(first, "backup").crontab
    assert task(second, "backup").crontab_id != own.pk
    own.hour = "4"
    own.save()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.schedule, second.schedule) == ("0 4 * * *", "0 2 * * *")


def test_a_schedule_change_edits_the_tasks_own_crontab_and_deleting_leaves_no_orphans():
    policy = Policy.objects.create(name="tidy")
    crontab_id = task(policy, "backup").crontab_id
    policy.schedule = "30 5 * * *"
    policy.save()
    assert task(policy, "backup").crontab_id == crontab_id  # edited in place
    assert CrontabSchedule.objects.get(pk=crontab_id).hour == "5"
    own_rows = list(PeriodicTask.objects.filter(name__startswith=f"policy:{policy.pk}:")
                    .values_list("crontab_id", flat=True))
    policy.delete()
    assert not CrontabSchedule.objects.filter(pk__in=own_rows).exists()


def test_disabling_the_backup_task_in_the_admin_disables_the_policy():
    policy = Policy.objects.create(name="p4")
    backup = task(policy, "backup")
    backup.enabled = False
    backup.save()
    policy.refresh_from_db()
    assert policy.enabled is False
    assert not task(policy, "prune").enabled


def test_an_admin_crontab_the_scheduler_cannot_run_leaves_the_policy_alone(caplog):
    policy = Policy.objects.create(name="p5", schedule="0 18 * * *")
    backup = task(policy, "backup")
    backup.crontab = CrontabSchedule.objects.create(minute="0", hour="18", day_of_month="1", day_of_week="1")
    backup.save()
    policy.refresh_from_db()
    assert policy.schedule == "0 18 * * *"
    assert "both day-of-month and day-of-week" in caplog.text


def test_sync_is_idempotent_and_does_not_loop():
    policy = Policy.objects.create(name="p6")
    before = {t.name: (t.crontab_id, t.enabled) for t in PeriodicTask.objects.filter(name__startswith=f"policy:{policy.pk}:")}
    for _ in range(3):
        sync.sync_policy_to_beat(policy)
        policy.save()
    after = {t.name: (t.crontab_id, t.enabled) for t in PeriodicTask.objects.filter(name__startswith=f"policy:{policy.pk}:")}
    assert before == after
    assert PeriodicTask.objects.filter(name__startswith=f"policy:{policy.pk}:").count() == 4


def test_every_periodic_task_names_a_registered_task_that_accepts_its_kwargs(make_volume):
    """What beat will send: the task name and kwargs stored in the PeriodicTask rows."""
    from backups.models import Job
    from storage_platform.celery import app

    policy = Policy.objects.create(name="wired")
    make_volume("v1", policy=policy)
    for periodic in PeriodicTask.objects.exclude(name="celery.backend_cleanup"):
        assert periodic.task in app.tasks, periodic.task
        result = app.tasks[periodic.task].apply(kwargs=json.loads(periodic.kwargs or "{}"))
        assert result.successful(), (periodic.name, result.traceback)
    assert Job.objects.filter(kind="backup", volume__name="v1").count() == 1


def test_a_policy_saved_in_code_with_a_bad_schedule_is_logged_not_a_crash(caplog):
    from backups.scheduling import fanout

    policy = Policy.objects.create(name="p7", schedule="0 18 * * *")
    policy.schedule = "0 18 L * *"
    policy.save()  # no exception: the API and admin form would have refused it
    assert "beat cannot run" in caplog.text
    assert task(policy, "backup").crontab.hour == "18"
    assert fanout.fan_out_backups(policy.pk).started == []
