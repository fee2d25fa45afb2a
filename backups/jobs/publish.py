"""Sending a job's Celery message: after commit, by task name, stamped with `sent_at`.

The message is published by the task's registered name (`send_task`), so nothing below the
task module imports it: imports run one way, tasks → runners → jobs.
"""

from __future__ import annotations

import logging
from typing import Callable

from django.db import transaction
from django.utils import timezone

from backups.models import Job, JobStatus

logger = logging.getLogger(__name__)

RUN_JOB_TASK = "backups.tasks.run_job"


def _celery_publish(job_id: str, queue: str, countdown: float | None) -> None:
    from storage_platform.celery import app

    app.send_task(RUN_JOB_TASK, args=[job_id], queue=queue, countdown=countdown)


# Replaced in tests that check what would be sent without a broker.
publisher: Callable[[str, str, float | None], None] = _celery_publish


def send(job_id, queue: str, countdown: float | None = None) -> bool:
    """Publish the Celery message for a job now and stamp `sent_at`. Returns False (and logs)
    when the broker refuses; the job stays queued and the reconciler re-sends it."""
    try:
        publisher(str(job_id), queue, countdown)
    except Exception as error:  # the broker is down: the row is the source of truth
        logger.warning("job %s: message not sent to queue %s (%s: %s); the reconciler will re-send",
                       job_id, queue, type(error).__name__, str(error)[:200])
        return False
    Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(sent_at=timezone.now())
    return True


def enqueue(job: Job, *, countdown: float | None = None) -> None:
    """Send `job`'s Celery message once the current transaction commits (at once outside one).

    Sending after commit means a worker never receives an id whose row it cannot read yet,
    and a rolled-back request leaves no message behind."""
    job_id, queue = job.pk, job.queue
    transaction.on_commit(lambda: send(job_id, queue, countdown), robust=True)
