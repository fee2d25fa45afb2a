"""Keep counters monotonic when catalog rows are deleted.

Django sends `post_delete` for every row a queryset delete removes as long as a receiver is
connected (it then cannot take the fast-delete path), so deleting backups or jobs through the
ORM always moves their share of the counters into `MetricCounter` in the same transaction.
Raw SQL deletes bypass this; the platform does not use them on these tables.
"""

from __future__ import annotations

from django.db.models.signals import post_delete

from backups.models import FINISHED_JOB_STATUSES, Backup, Job
from monitoring import counters, totals



def retire_backup(sender, instance: Backup, **kwargs) -> None:
    contribution = totals.backup_contribution(instance.status, instance.stats)
    if not contribution:
        return
    for name, labels, amount in totals.totals_to_counters(contribution):
        counters.increment(name, labels, amount)


def retire_job(sender, instance: Job, **kwargs) -> None:
    if instance.status in FINISHED_JOB_STATUSES:
        counters.increment(totals.JOB_FINISHED, {"kind": instance.kind, "result": instance.status})


def connect() -> None:
    post_delete.connect(retire_backup, sender=Backup, dispatch_uid="monitoring.retire_backup")
    post_delete.connect(retire_job, sender=Job, dispatch_uid="monitoring.retire_job")
