"""Celery tasks. Thin: the message carries only a job id; `runners.execute` does the work.

`acks_late` + `reject_on_worker_lost` (settings) mean a message is acknowledged only when the
task returns, so a worker killed mid-job leaves the message to be redelivered; `execute`'s
atomic claim makes the redelivery safe.
"""

from __future__ import annotations

from celery import shared_task

from backups.jobs.publish import RUN_JOB_TASK
from backups.runners import execute


# Published by name (`jobs.publish`), so no module below this one imports it.
@shared_task(name=RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> str:
    """Run one delivery of the job `job_id` (backup, restore, verify, prune or drill)."""
    return execute(job_id)
