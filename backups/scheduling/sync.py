"""Policy ⇄ django-celery-beat: one PeriodicTask per policy schedule, kept equal both ways.

Each policy owns up to five periodic tasks, named `policy:<id>:backup`, `policy:<id>:verify`,
`policy:<id>:prune`, `policy:<id>:drill` and `policy:<id>:replicate` (only while the policy
names a replication target), each on a CrontabSchedule row of its own in the policy's time zone
(own rows, so editing one in the admin changes one policy). The name is the link (it never
changes when the policy is renamed); the description carries the policy name for the admin.

Directions:

* `sync_policy_to_beat(policy)` (on every Policy save): creates or updates the tasks;
  a disabled policy disables them; an empty verify/prune/drill/replication schedule (or no
  replication target) removes that task.
* `apply_periodic_task_to_policy(task)` (on a PeriodicTask or CrontabSchedule save in the admin):
  copies the crontab back into the policy (the backup task also carries the time zone and
  the enabled flag), then re-syncs the policy's other tasks so they follow a time-zone change.

Loop guard: while one direction writes, the other direction's signal handlers do nothing
(`syncing()`); policy rows are written with `QuerySet.update`, which sends no signal.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from contextvars import ContextVar
from zoneinfo import ZoneInfo

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from backups.models import Policy
from backups.scheduling import clock, cron

logger = logging.getLogger(__name__)

TASK_POLICY_BACKUP = "backups.scheduling.tasks.policy_backup"
TASK_POLICY_VERIFY = "backups.scheduling.tasks.policy_verify"
TASK_POLICY_PRUNE = "backups.scheduling.tasks.policy_prune"
TASK_POLICY_DRILL = "backups.scheduling.tasks.policy_drill"
TASK_POLICY_REPLICATE = "backups.scheduling.tasks.policy_replicate"
TASK_RECONCILE = "backups.scheduling.tasks.reconcile_jobs"
TASK_RPO_CATCH_UP = "backups.scheduling.tasks.rpo_catch_up"

# kind -> (Policy field holding its cron expression, Celery task name)
POLICY_TASKS = {
    "backup": ("schedule", TASK_POLICY_BACKUP),
    "verify": ("verify_schedule", TASK_POLICY_VERIFY),
    "prune": ("prune_schedule", TASK_POLICY_PRUNE),
    "drill": ("drill_schedule", TASK_POLICY_DRILL),
    "replicate": ("replication_schedule", TASK_POLICY_REPLICATE),
}


def scheduled_expression(policy: Policy, kind: str) -> str:
    """The cron expression the policy's `kind` task runs on; empty: no task. Replication
    runs only while the policy names a target."""
    if kind == "replicate" and not policy.replication_target:
        return ""
    return getattr(policy, POLICY_TASKS[kind][0])

# Platform-wide periodic tasks registered on migrate: (name, task, every N seconds).
SYSTEM_TASKS = (
    ("platform:reconcile-jobs", TASK_RECONCILE, 60),
    ("platform:rpo-catch-up", TASK_RPO_CATCH_UP, 300),
)

_syncing: ContextVar[bool] = ContextVar("policy_beat_sync_in_progress", default=False)


@contextmanager
def syncing():
    """Mark the body as a sync write, so the reverse-direction signal handlers stand still."""
    token = _syncing.set(True)
    try:
        yield
    finally:
        _syncing.reset(token)


def sync_in_progress() -> bool:
    return _syncing.get()


def periodic_task_name(policy_id: int, kind: str) -> str:
    return f"policy:{policy_id}:{kind}"


def parse_periodic_task_name(name: str) -> tuple[int, str] | None:
    """(policy id, kind) for a policy task name, None for any other periodic task."""
    parts = name.split(":")
    if len(parts) != 3 or parts[0] != "policy" or parts[2] not in POLICY_TASKS or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2]


def crontab_for(schedule: cron.CronSchedule, task: PeriodicTask | None = None) -> CrontabSchedule:
    """The CrontabSchedule a policy task should point at.

    Each policy task owns its crontab row (it is not shared with other tasks), so an operator
    who edits that row in the admin changes exactly one policy. The task's row is updated in
    place when only this task uses it; otherwise (a new task, or an admin pointed the task at
    a shared row) a new row is created.
    """
    fields = dict(schedule.fields, timezone=ZoneInfo(schedule.timezone))
    current = task.crontab if task is not None and task.crontab_id else None
    if current is not None and not PeriodicTask.objects.filter(crontab=current).exclude(pk=task.pk).exists():
        changed = [name for name, value in fields.items() if str(getattr(current, name)) != str(value)]
        if changed:
            for name in changed:
                setattr(current, name, fields[name])
            current.save()  # within syncing(): the CrontabSchedule signal stands still
        return current
    return CrontabSchedule.objects.create(**fields)


def _delete_orphaned_crontabs(crontab_ids) -> None:
    CrontabSchedule.objects.filter(pk__in=[pk for pk in crontab_ids if pk]).filter(periodictask__isnull=True).delete()


def crontab_expression(crontab: CrontabSchedule) -> str:
    return " ".join(str(getattr(crontab, field)) for field in cron.FIELD_NAMES)


def sync_policy_to_beat(policy: Policy) -> None:
    """Make the policy's PeriodicTasks match the policy. Idempotent."""
    with syncing(), transaction.atomic():
        for kind, (field, task_name) in POLICY_TASKS.items():
            name = periodic_task_name(policy.pk, kind)
            expression = scheduled_expression(policy, kind)
            task = PeriodicTask.objects.select_related("crontab").filter(name=name).first()
            if not expression:
                if task is not None:
                    task.delete()
                    _delete_orphaned_crontabs([task.crontab_id])
                continue
            schedule = cron.parse(expression, policy.timezone)
            previous_crontab_id = task.crontab_id if task is not None else None
            defaults = {
                "task": task_name,
                "crontab": crontab_for(schedule, task),
                "interval": None,
                "kwargs": json.dumps({"policy_id": policy.pk}),
                "enabled": policy.enabled,
                "description": f"{kind} of policy '{policy.name}' (managed: edit the policy or this crontab)",
            }
            if task is None:
                PeriodicTask.objects.create(name=name, **defaults)
                continue
            changed = [key for key, value in defaults.items() if getattr(task, key) != value]
            if changed:
                for key in changed:
                    setattr(task, key, defaults[key])
                # PeriodicTask.save bumps PeriodicTasks.last_update, which makes beat reload
                # (django-celery-beat does the same for a CrontabSchedule saved in place).
                task.save()
            if previous_crontab_id != defaults["crontab"].pk:
                _delete_orphaned_crontabs([previous_crontab_id])


def delete_policy_tasks(policy_id: int) -> None:
    with syncing():
        tasks = PeriodicTask.objects.filter(name__startswith=f"policy:{policy_id}:")
        crontab_ids = list(tasks.values_list("crontab_id", flat=True))
        tasks.delete()
        _delete_orphaned_crontabs(crontab_ids)


def apply_periodic_task_to_policy(task: PeriodicTask) -> bool:
    """Copy an admin edit of a policy's PeriodicTask back into the policy. True when changed.

    Only a crontab the scheduler can run is accepted; anything else (an interval schedule, an
    expression restricting both day fields) is logged and left for the operator to fix, and
    the policy keeps its last good schedule.
    """
    parsed = parse_periodic_task_name(task.name)
    if parsed is None:
        return False
    policy_id, kind = parsed
    policy = Policy.objects.filter(pk=policy_id).first()
    if policy is None:
        return False
    field = POLICY_TASKS[kind][0]
    if task.crontab_id is None:
        logger.warning("periodic task %s has no crontab; policy %s keeps %s", task.name, policy.name, field)
        return False
    crontab = task.crontab
    time_zone = str(crontab.timezone)
    try:
        schedule = cron.parse(crontab_expression(crontab), time_zone)
    except cron.InvalidSchedule as error:
        logger.warning("periodic task %s: %s; policy %s keeps its %s", task.name, error, policy.name, field)
        return False
    updates = {field: schedule.expression}
    if kind == "backup":
        updates["timezone"] = schedule.timezone
        updates["enabled"] = task.enabled
    updates = {key: value for key, value in updates.items() if getattr(policy, key) != value}
    if not updates:
        return False
    with syncing():
        # update() sends no post_save, so this write cannot bounce back into the beat side.
        Policy.objects.filter(pk=policy.pk).update(updated_at=clock.now(), **updates)
    policy.refresh_from_db()
    logger.info("policy %s: %s taken from periodic task %s", policy.name, ", ".join(sorted(updates)), task.name)
    # A new time zone on the backup task also moves the verify and prune tasks.
    sync_policy_to_beat(policy)
    return True


def apply_crontab_to_policies(crontab: CrontabSchedule) -> int:
    """An admin edited a CrontabSchedule in place: update every policy whose task uses it."""
    changed = 0
    for task in PeriodicTask.objects.filter(crontab=crontab, name__startswith="policy:"):
        changed += apply_periodic_task_to_policy(task)
    return changed


def ensure_system_tasks() -> None:
    """Register the reconciler and the RPO catch-up as interval periodic tasks (idempotent)."""
    with syncing():
        for name, task_name, seconds in SYSTEM_TASKS:
            interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
            PeriodicTask.objects.get_or_create(
                name=name,
                defaults={"task": task_name, "interval": interval, "enabled": True,
                          "description": "platform job reliability (see docs/scheduling.md)"},
            )


def sync_all_policies() -> None:
    for policy in Policy.objects.all():
        try:
            sync_policy_to_beat(policy)
        except cron.InvalidSchedule as error:
            logger.error("policy %s cannot be scheduled: %s", policy.name, error)
