"""The reconciler: no job is lost when a message, a worker or the broker goes away.

Runs every minute from beat (and from `manage.py reconcile_jobs`). Two repairs:

1. **Lost messages.** A job `queued` whose message was sent more than
   `JOB_RESEND_AFTER_SECONDS` ago (or never: the broker refused it, the process died between
   commit and send), and which has been due (`run_after`, a retry's backoff) for as long, gets
   its message sent again.
   With Redis, a job whose message is still in its queue (or was delivered to a worker less
   than `JOB_RESEND_AFTER_SECONDS` ago) is only waiting its turn and is left alone
   (`broker_probe`); a message a worker has held unacknowledged for longer, while its job is
   still queued, was reserved by a worker that died (kill -9 keeps it in `unacked` until the
   visibility timeout, hours), so the job is re-sent. When the broker cannot be read, age
   alone decides. Sending twice is safe anyway: `jobs.claim` is one conditional UPDATE, so of two
   messages for the same job exactly one runs it; the other finds it taken and does nothing.
2. **Dead workers.** A job `running` whose heartbeat is older than `JOB_STALE_AFTER_SECONDS`
   lost its worker (kill -9, OOM, host gone). With attempts left it is requeued (a new
   message; the claim takes it over), else it fails with `worker_lost` and a reason. The
   requeue is conditional on the job still being held by the same silent worker, so a job
   that finished or moved on meanwhile is not touched.

Backups are safe to re-run from the start: the engine's snapshot is its commit point, so an
interrupted attempt leaves no snapshot, only unreferenced packs that prune removes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from backups import jobs
from backups.models import Job, JobStatus
from backups.scheduling import broker_probe, clock

logger = logging.getLogger(__name__)

DEFAULT_RESEND_AFTER_SECONDS = 300
BATCH_LIMIT = 1000  # per run: a huge backlog is worked off over several runs, not in one


def resend_after_seconds() -> int:
    return int(getattr(settings, "JOB_RESEND_AFTER_SECONDS", DEFAULT_RESEND_AFTER_SECONDS))


@dataclass
class ReconcileResult:
    resent: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # old but their message is still queued
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"resent": len(self.resent), "waiting": len(self.waiting), "requeued": len(self.requeued),
                "failed": len(self.failed)}


def lost_queued_jobs(now: datetime):
    cutoff = now - timedelta(seconds=resend_after_seconds())
    return (
        Job.objects.filter(status=JobStatus.QUEUED, cancel_requested=False)
        .filter(Q(sent_at__isnull=True, created_at__lt=cutoff) | Q(sent_at__lt=cutoff))
        # A retry waiting out its backoff has a message with a countdown: count from when it
        # is due, not from when it was sent, or every long backoff would get a duplicate.
        .filter(Q(run_after__isnull=True) | Q(run_after__lt=cutoff))
        .order_by("created_at")
    )


def stale_running_jobs(now: datetime):
    cutoff = now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    return (
        Job.objects.filter(status=JobStatus.RUNNING)
        .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
        .order_by("heartbeat_at")
    )


def reconcile(*, now: datetime | None = None) -> ReconcileResult:
    """Run both repairs once; returns what was done (see module contract)."""
    now = now or clock.now()
    result = ReconcileResult()
    candidates = list(lost_queued_jobs(now)[:BATCH_LIMIT])
    # An unacknowledged message older than the resend delay belongs to a worker that died
    # holding it (its job would be running otherwise): it does not count as "waiting".
    # (Delivery times are kombu's, on the real clock, so the probe reads the real clock.)
    in_broker = broker_probe.job_ids_with_messages(
        {job.queue for job in candidates}, held_for_at_most=resend_after_seconds()) \
        if candidates else None
    for job in candidates:
        if in_broker is not None and str(job.pk) in in_broker:
            result.waiting.append(str(job.pk))  # its message is there: it only waits its turn
            continue
        if jobs.send(job.pk, job.queue):
            result.resent.append(str(job.pk))
            logger.warning("reconciler: job %s (%s) was queued with no message since %s; re-sent to %s",
                           job.pk, job.kind, job.sent_at or job.created_at, job.queue)
    for job in stale_running_jobs(now)[:BATCH_LIMIT]:
        silent_since = job.heartbeat_at or job.started_at
        reason = (f"Worker {job.worker or '?'} stopped heartbeating (last heartbeat {silent_since:%Y-%m-%d %H:%M:%S} "
                  f"UTC, more than {settings.JOB_STALE_AFTER_SECONDS} s ago)")
        if job.attempts < job.max_attempts:
            if jobs.requeue(job, f"{reason}; requeued (attempt {job.attempts} of {job.max_attempts}).",
                            owned_by=job.worker):
                result.requeued.append(str(job.pk))
                logger.warning("reconciler: job %s (%s): %s; requeued", job.pk, job.kind, reason)
        elif jobs.fail(job, f"{reason}; gave up after {job.attempts} attempts.", "worker_lost",
                       owned_by=job.worker):
            result.failed.append(str(job.pk))
            logger.error("reconciler: job %s (%s): %s; failed after %d attempts",
                         job.pk, job.kind, reason, job.attempts)
    return result
