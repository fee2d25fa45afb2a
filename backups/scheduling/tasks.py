"""Beat entry points. Thin: each one calls the module that holds the logic and returns a
small summary for the worker log. They run on the `default` queue; the jobs they start go to
`backup` / `maintenance` (backups/routing.py)."""

from __future__ import annotations

from celery import shared_task

from backups.scheduling import sync


@shared_task(name=sync.TASK_POLICY_BACKUP, ignore_result=True)
def policy_backup(policy_id: int) -> dict:
    from backups.scheduling.fanout import fan_out_backups

    return fan_out_backups(policy_id).as_dict()


@shared_task(name=sync.TASK_POLICY_VERIFY, ignore_result=True)
def policy_verify(policy_id: int) -> str | None:
    from backups.scheduling.fanout import start_policy_verify

    return start_policy_verify(policy_id)


@shared_task(name=sync.TASK_POLICY_PRUNE, ignore_result=True)
def policy_prune(policy_id: int) -> str | None:
    from backups.scheduling.fanout import start_policy_prune

    return start_policy_prune(policy_id)


@shared_task(name=sync.TASK_POLICY_DRILL, ignore_result=True)
def policy_drill(policy_id: int) -> str | None:
    from backups.scheduling.fanout import start_policy_drill

    return start_policy_drill(policy_id)


@shared_task(name=sync.TASK_POLICY_REPLICATE, ignore_result=True)
def policy_replicate(policy_id: int) -> str | None:
    from backups.scheduling.fanout import start_policy_replicate

    return start_policy_replicate(policy_id)


@shared_task(name=sync.TASK_RPO_CATCH_UP, ignore_result=True)
def rpo_catch_up() -> dict:
    from backups.scheduling.rpo import catch_up

    return catch_up().as_dict()


@shared_task(name=sync.TASK_RECONCILE, ignore_result=True)
def reconcile_jobs() -> dict:
    from backups.scheduling.reconciler import reconcile

    return reconcile().as_dict()
