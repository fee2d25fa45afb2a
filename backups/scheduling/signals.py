"""Signal wiring of the scheduler (imported once from `BackupsConfig.ready`).

* Policy saved/deleted → its PeriodicTasks follow (sync.py).
* PeriodicTask or CrontabSchedule edited in the admin → the Policy follows.
* After `migrate` → every policy is synced and the reconciler and RPO catch-up are registered,
  so a fresh database has a working schedule without anyone opening the admin.
"""

from __future__ import annotations

import logging

from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backups.models import Policy
from backups.scheduling import cron, sync
from backups.scheduling import tasks as _tasks  # noqa: F401 - registers the beat entry points

logger = logging.getLogger(__name__)


@receiver(post_save, sender=Policy, dispatch_uid="scheduling.policy_saved")
def _policy_saved(sender, instance, raw=False, **kwargs):
    if raw or sync.sync_in_progress():
        return
    try:
        sync.sync_policy_to_beat(instance)
    except cron.InvalidSchedule as error:
        # The API and the admin form validate first; only code writing the model directly
        # gets here. Saving must not fail for it, but nobody may miss that beat did not follow.
        logger.error("policy %s saved with a schedule beat cannot run (%s); its periodic tasks "
                     "keep their previous schedule", instance.name, error)


@receiver(post_delete, sender=Policy, dispatch_uid="scheduling.policy_deleted")
def _policy_deleted(sender, instance, **kwargs):
    sync.delete_policy_tasks(instance.pk)


@receiver(post_save, sender=PeriodicTask, dispatch_uid="scheduling.periodic_task_saved")
def _periodic_task_saved(sender, instance, raw=False, **kwargs):
    if raw or sync.sync_in_progress():
        return
    sync.apply_periodic_task_to_policy(instance)


@receiver(post_save, sender=CrontabSchedule, dispatch_uid="scheduling.crontab_saved")
def _crontab_saved(sender, instance, created=False, raw=False, **kwargs):
    if raw or created or sync.sync_in_progress():
        return
    sync.apply_crontab_to_policies(instance)


def _after_migrate(sender, **kwargs):
    if getattr(sender, "label", None) != "backups":
        return
    sync.ensure_system_tasks()
    sync.sync_all_policies()


post_migrate.connect(_after_migrate, dispatch_uid="scheduling.after_migrate")
