"""Job runners and the one place that executes a delivered job.

`execute(job_id)` is what the Celery task calls for every delivery of a message:

    claim (atomic) → JobContext (heartbeat, progress, cancel) → RUNNERS[kind](job, context)
      → succeeded | cancelled | retry with backoff (transient) | failed (permanent)

A runner is `run(job, context) -> dict` (the job's `result`). It raises platform or engine
errors; it never writes the job's status itself. Runners must be idempotent: a redelivered
job runs again from the start (the backup runner adopts the snapshot a dead attempt wrote).
"""

from __future__ import annotations

import logging
import uuid

from django.db import OperationalError
from django.utils import timezone

from backups import jobs
from backups.errors import JobCancelled
from backups.models import Job, JobKind, JobStatus
from storage_platform.errors import PlatformError

logger = logging.getLogger(__name__)


class RunnerFailure(Exception):
    """A runner's permanent failure that carries a result worth keeping (e.g. a verify or drill
    report)."""

    transient = False

    def __init__(self, message: str, code: str, result: dict | None = None):
        super().__init__(message)
        self.message, self.code, self.result = message, code, result or {}


def _runners() -> dict:
    from backups.runners import backup, drill, prune, replicate, restore, verify

    return {JobKind.BACKUP: backup.run, JobKind.RESTORE: restore.run,
            JobKind.VERIFY: verify.run, JobKind.PRUNE: prune.run, JobKind.DRILL: drill.run,
            JobKind.REPLICATE: replicate.run}


# Tests replace entries to drive the state machine with runners that fail on purpose.
RUNNERS: dict = {}


def runner_for(kind: str):
    return RUNNERS.get(kind) or _runners().get(kind)


def describe_error(error: BaseException) -> tuple[str, str, bool]:
    """(code, message, transient) for any error a runner raised."""
    from backups.engine.errors import EngineError

    if isinstance(error, (PlatformError, EngineError, RunnerFailure)):
        return error.code, error.message, bool(error.transient)
    if isinstance(error, OperationalError):
        return "database_unavailable", "The database was unavailable.", True
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        return "io_error", f"File system error: {reason}.", False
    return "internal_error", f"Unexpected {type(error).__name__}; see the worker log.", False


def execute(job_id, *, worker: str | None = None) -> str:
    """Run one delivery of `job_id`. Returns what happened (for logs and tests): `succeeded`,
    `failed`, `cancelled`, `queued` (retry scheduled), `lost` (another worker took it over),
    `deferred` (not due yet, re-sent), `duplicate` (already finished or held), `missing`."""
    worker = worker or jobs.worker_identity()
    try:
        uuid.UUID(str(job_id))
    except ValueError:
        logger.warning("message with a malformed job id dropped")
        return "missing"
    job = jobs.claim(job_id, worker=worker)
    if job is None:
        job = _claim_after_refusal(job_id, worker)
        if isinstance(job, str):
            return job
    if job.attempts > job.max_attempts:
        # Claimed back from a dead worker more often than it may be attempted: stop here
        # rather than crash workers forever (e.g. a volume that gets a worker OOM-killed).
        jobs.fail(job, f"The worker running this job stopped {job.attempts - 1} times.", "worker_lost",
                  owned_by=worker)
        return JobStatus.FAILED
    if job.cancel_requested:
        # Cancelled while its previous worker was dying: honour it instead of starting over.
        jobs.cancelled(job, owned_by=worker)
        return JobStatus.CANCELLED
    logger.info("job %s (%s) attempt %s started on %s", job.pk, job.kind, job.attempts, worker)
    runner = runner_for(job.kind)
    if runner is None:
        jobs.fail(job, f"No runner for jobs of kind {job.kind!r}.", "unsupported_job", owned_by=worker)
        return JobStatus.FAILED
    from backups.engine.errors import Cancelled

    with jobs.JobContext(job, worker=worker) as context:
        try:
            result = runner(job, context)
        except (JobCancelled, Cancelled):
            if context.lost:
                return "lost"
            jobs.cancelled(job, owned_by=worker)
            logger.info("job %s cancelled", job.pk)
            return JobStatus.CANCELLED
        except Exception as error:
            if context.lost:
                return "lost"
            code, message, transient = describe_error(error)
            if code == "internal_error":
                logger.exception("job %s failed with an unexpected error", job.pk)
            if transient:
                outcome = jobs.retry_or_fail(job, message, code, owned_by=worker)
                logger.warning("job %s: transient error %s; now %s", job.pk, code, outcome)
                return outcome
            jobs.fail(job, message, code, owned_by=worker, result=getattr(error, "result", None))
            logger.warning("job %s failed: %s", job.pk, code)
            return JobStatus.FAILED
    if not jobs.succeed(job, result, owned_by=worker):
        return "lost"
    logger.info("job %s succeeded", job.pk)
    return JobStatus.SUCCEEDED


def _claim_after_refusal(job_id, worker: str):
    """Decide about a message whose job could not be claimed. Returns a claimed Job (the
    previous holder was a dead process on this host) or an outcome string."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("job %s does not exist; message dropped", job_id)
        return "missing"
    if job.status == JobStatus.QUEUED and job.run_after and job.run_after > timezone.now():
        # A re-send arrived before the retry backoff ended: keep the timing.
        delay = (job.run_after - timezone.now()).total_seconds()
        jobs.send(job.pk, job.queue, countdown=max(delay, 0.1))
        return "deferred"
    if job.status == JobStatus.RUNNING:
        taken = jobs.take_over_dead_local_worker(job, worker=worker)
        if taken is not None:
            logger.warning("job %s: its worker %s is gone; taken over", job.pk, job.worker)
            return taken
    return "duplicate"
