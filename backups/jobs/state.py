"""The job state machine: queued → running → succeeded | failed | cancelled.

Contracts callers may rely on:

* Job rows are written before any Celery message exists; `enqueue` sends the message only
  when the surrounding transaction commits, then stamps `sent_at`. A job whose message was
  lost stays `queued` with an old (or no) `sent_at`, and the reconciler re-sends it.
* `claim` is one conditional UPDATE: of several workers handed the same job id (redelivery,
  a re-send), exactly one gets it. A running job can be taken over only when its heartbeat is
  older than `JOB_STALE_AFTER_SECONDS` (its worker is gone).
* Every terminal transition of a running job is conditional on `worker` still being the
  caller, so a worker that lost its job (taken over, or cancelled) can never overwrite the
  state written by the new owner.
* Related rows follow the job in the same transaction: the Backup's status mirrors a backup
  job, and a restore's target volume leaves `restoring` when the job ends however it ends.
* Transient errors (`transient = True` on platform or engine errors) are retried with
  exponential backoff and jitter, up to `max_attempts`; permanent errors fail at once.

Celery carries only the job id; everything else is read from the database.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from backups import volume_access
from backups.errors import JobFinished
from backups.jobs import identity, publish, retry
from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus

logger = logging.getLogger(__name__)

# Backup.status for each terminal or active Job.status.
BACKUP_STATUS_FOR_JOB = {
    JobStatus.QUEUED: BackupStatus.QUEUED,
    JobStatus.RUNNING: BackupStatus.RUNNING,
    JobStatus.SUCCEEDED: BackupStatus.COMPLETED,
    JobStatus.FAILED: BackupStatus.FAILED,
    JobStatus.CANCELLED: BackupStatus.CANCELLED,
}

MAX_ERROR_LENGTH = 4000


# --- transitions ---------------------------------------------------------------------------
def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)


def claim(job_id, *, worker: str | None = None, now: datetime | None = None) -> Job | None:
    """Atomically take a job for this worker: queued and due, or running with a stale
    heartbeat (its worker died). Returns the claimed job, or None when someone else holds it,
    it is not due yet, or it has finished. Increments `attempts`."""
    worker = worker or identity.worker_identity()
    now = now or timezone.now()
    stale = _stale_before(now)
    claimable = (
        Q(status=JobStatus.QUEUED, cancel_requested=False) & (Q(run_after__isnull=True) | Q(run_after__lte=now))
    ) | (Q(status=JobStatus.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)))
    with transaction.atomic():
        updated = Job.objects.filter(claimable, pk=job_id).update(
            status=JobStatus.RUNNING, worker=worker, heartbeat_at=now, attempts=F("attempts") + 1,
            run_after=None,
        )
        if not updated:
            return None
        Job.objects.filter(pk=job_id, started_at__isnull=True).update(started_at=now)
        job = Job.objects.get(pk=job_id)
        _sync_related(job)
    return job


def take_over_dead_local_worker(job: Job, *, worker: str | None = None) -> Job | None:
    """Claim a running job whose recorded worker is a process on this host (and in this PID
    namespace) that no longer exists (a prefork child killed by the OOM killer or `kill -9`),
    without waiting for its heartbeat to go stale. Conditional on the recorded worker and
    heartbeat being unchanged."""
    if identity.dead_local_pid(job.worker) is None:
        return None
    worker = worker or identity.worker_identity()
    now = timezone.now()
    with transaction.atomic():
        updated = Job.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, worker=job.worker, heartbeat_at=job.heartbeat_at
        ).update(worker=worker, heartbeat_at=now, attempts=F("attempts") + 1)
        if not updated:
            return None
        return Job.objects.get(pk=job.pk)


def _finish(job: Job, status: str, *, error: str = "", code: str = "", result: dict | None = None,
            owned_by: str | None = None, from_statuses=(JobStatus.QUEUED, JobStatus.RUNNING)) -> bool:
    """Move `job` to a terminal status. With `owned_by`, only while that worker runs it."""
    now = timezone.now()
    condition = Q(pk=job.pk, status__in=from_statuses)
    if owned_by is not None:
        condition &= Q(status=JobStatus.RUNNING, worker=owned_by)
    values = {"status": status, "finished_at": now, "heartbeat_at": now, "error": error[:MAX_ERROR_LENGTH],
              "error_code": code, "run_after": None}
    if result is not None:
        values["result"] = result
    if status == JobStatus.SUCCEEDED:
        values["progress_done"] = F("progress_total")
    with transaction.atomic():
        if not Job.objects.filter(condition).update(**values):
            return False
        job.refresh_from_db()
        _sync_related(job)
    return True


def succeed(job: Job, result: dict | None = None, *, owned_by: str | None = None) -> bool:
    """Mark a running job succeeded with its `result`. False if the caller no longer owns it."""
    return _finish(job, JobStatus.SUCCEEDED, result=result or {}, owned_by=owned_by)


def fail(job: Job, error: str, code: str, *, owned_by: str | None = None, result: dict | None = None) -> bool:
    """Mark a queued or running job failed with a human `error` and a stable `code`.
    Used by runners (permanent errors, retries exhausted) and by the reconciler (worker lost).
    False when the job had already finished (or, with `owned_by`, belongs to another worker)."""
    return _finish(job, JobStatus.FAILED, error=error, code=code, owned_by=owned_by, result=result)


def cancelled(job: Job, *, owned_by: str | None = None, reason: str = "Cancelled on request.") -> bool:
    """Mark a job cancelled (by a runner that stopped on request)."""
    return _finish(job, JobStatus.CANCELLED, error=reason, code="cancelled", owned_by=owned_by)


def request_cancel(job: Job) -> Job:
    """Cancel a job: a queued one is cancelled at once; a running one gets `cancel_requested`
    and stops at its next chunk (its heartbeat reads the flag). Raises `JobFinished` (409)
    for a finished job. Returns the refreshed job."""
    if _finish(job, JobStatus.CANCELLED, error="Cancelled before it started.", code="cancelled",
               from_statuses=(JobStatus.QUEUED,)):
        return job
    # Running, or it started between our read and the update above.
    if Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        return job
    job.refresh_from_db()
    if job.status == JobStatus.QUEUED:  # raced back to queued by a retry: cancel it now
        return request_cancel(job)
    raise JobFinished(f"Job {job.pk} has already {job.status}.", detail={"job": str(job.pk), "status": job.status})


def requeue(job: Job, reason: str, *, countdown: float | None = None, owned_by: str | None = None) -> bool:
    """Put a job back to `queued` and send it again (after `countdown` seconds): used for
    retries and by the reconciler for jobs whose worker is gone. `attempts` is kept, so the
    next claim counts the new attempt. False if the job finished or changed hands."""
    now = timezone.now()
    run_after = now + timedelta(seconds=countdown) if countdown else None
    condition = Q(pk=job.pk, status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
    if owned_by is not None:
        condition &= Q(worker=owned_by)
    if Job.objects.filter(condition, cancel_requested=True).exists():
        # Someone asked to cancel it: a queued job with that flag would never be claimed.
        _finish(job, JobStatus.CANCELLED, error="Cancelled on request.", code="cancelled", owned_by=owned_by)
        return False
    with transaction.atomic():
        if not Job.objects.filter(condition).update(
            status=JobStatus.QUEUED, worker="", heartbeat_at=None, run_after=run_after,
            progress_message=reason[:256], error=reason[:MAX_ERROR_LENGTH], sent_at=None,
        ):
            return False
        job.refresh_from_db()
        _sync_related(job)
        publish.enqueue(job, countdown=countdown)
    return True


def retry_or_fail(job: Job, error: str, code: str, *, owned_by: str | None = None,
                  policy: retry.RetryPolicy | None = None) -> str:
    """After a transient error: requeue with backoff while attempts remain, else fail.
    Returns the new status (`queued` or `failed`)."""
    policy = policy or retry.retry_policy
    job.refresh_from_db(fields=["attempts", "max_attempts"])
    if job.attempts < job.max_attempts:
        delay = policy.delay(job.attempts)
        reason = f"Attempt {job.attempts} of {job.max_attempts} failed ({error}); retrying in {delay:.0f} s."
        if requeue(job, reason, countdown=delay, owned_by=owned_by):
            return JobStatus.QUEUED
        job.refresh_from_db(fields=["status"])
        return job.status
    fail(job, f"{error} (gave up after {job.attempts} attempts)", code, owned_by=owned_by)
    return JobStatus.FAILED


def _sync_related(job: Job) -> None:
    """Keep the rows that mirror a job consistent with it (called inside its transaction)."""
    if job.kind == JobKind.BACKUP:
        values = {"status": BACKUP_STATUS_FOR_JOB[job.status]}
        if job.status == JobStatus.RUNNING:
            values["started_at"] = job.started_at
        if job.status == JobStatus.SUCCEEDED:
            values["completed_at"] = job.finished_at
            values["error"] = ""
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            values["error"] = job.error
        if job.status == JobStatus.QUEUED:
            values["error"] = ""
        Backup.objects.filter(job=job).update(**values)
    elif job.kind == JobKind.RESTORE and job.volume_id and job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        volume_access.finish_restore(job.volume_id, succeeded=job.status == JobStatus.SUCCEEDED,
                                     new_volume=bool(job.params.get("new_volume")), error=job.error)
