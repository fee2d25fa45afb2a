"""Celery tasks. Thin: the message carries only a job id; `runners.execute` does the work.

`acks_late` + `reject_on_worker_lost` (settings) mean a message is acknowledged only when the
task returns, so a worker killed mid-job leaves the message to be redelivered; `execute`'s
atomic claim makes the redelivery safe.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="backups.tasks.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> str:
    """Run one delivery of the job `job_id` (backup, restore, verify or prune)."""
    from backups.runners import execute

    return execute(job_id)
