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
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from backups.errors import JobFinished
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


def _pid_namespace() -> str:
    try:
        return f"ns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # no /proc (not Linux): the host name alone must do
        return "ns0"


def worker_identity() -> str:
    """`<host>:<pid>:ns<pid namespace>` of this process. Computed per call: prefork children
    fork after import. The PID namespace tells apart containers that share a host name (host
    networking), whose pids mean nothing to each other."""
    return f"{socket.gethostname()}:{os.getpid()}:{_pid_namespace()}"


# --- retry policy --------------------------------------------------------------------------
@dataclass
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of
    `min(cap, base * 2**(n-1))` seconds. `jitter` returns a float in [0, 1); tests inject it."""

    base_seconds: float = 15.0
    cap_seconds: float = 900.0
    jitter: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(attempt - 1, 0)))
        return ceiling / 2 + self.jitter() * ceiling / 2


retry_policy = RetryPolicy(
    base_seconds=float(getattr(settings, "JOB_RETRY_BASE_SECONDS", 15)),
    cap_seconds=float(getattr(settings, "JOB_RETRY_CAP_SECONDS", 900)),
)


# --- sending -------------------------------------------------------------------------------
def _celery_publish(job_id: str, queue: str, countdown: float | None) -> None:
    from backups.tasks import run_job  # imported late: tasks imports this module

    run_job.apply_async(args=[job_id], queue=queue, countdown=countdown)


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


# --- transitions ---------------------------------------------------------------------------
def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)


def claim(job_id, *, worker: str | None = None, now: datetime | None = None) -> Job | None:
    """Atomically take a job for this worker: queued and due, or running with a stale
    heartbeat (its worker died). Returns the claimed job, or None when someone else holds it,
    it is not due yet, or it has finished. Increments `attempts`."""
    worker = worker or worker_identity()
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
    namespace) that no longer exists (a prefork child killed by the OOM killer or `kill -9`), without waiting for its
    heartbeat to go stale. Conditional on the recorded worker and heartbeat being unchanged."""
    parts = job.worker.rsplit(":", 2)
    if len(parts) != 3:
        return None
    host, pid_text, namespace = parts
    if (host != socket.gethostname() or namespace != _pid_namespace() or not pid_text.isdigit()
            or _process_alive(int(pid_text))):
        return None
    worker = worker or worker_identity()
    now = timezone.now()
    with transaction.atomic():
        updated = Job.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, worker=job.worker, heartbeat_at=job.heartbeat_at
        ).update(worker=worker, heartbeat_at=now, attempts=F("attempts") + 1)
        if not updated:
            return None
        return Job.objects.get(pk=job.pk)


def _process_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie counts as dead: a killed pool child stays a zombie
    until Celery's main process reaps it, which may be after the redelivered message arrives."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


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
        enqueue(job, countdown=countdown)
    return True


def retry_or_fail(job: Job, error: str, code: str, *, owned_by: str | None = None,
                  policy: RetryPolicy | None = None) -> str:
    """After a transient error: requeue with backoff while attempts remain, else fail.
    Returns the new status (`queued` or `failed`)."""
    policy = policy or retry_policy
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
        from volumes.models import Volume, VolumeStatus

        volume_status = VolumeStatus.AVAILABLE
        message = ""
        if job.status != JobStatus.SUCCEEDED and job.params.get("new_volume"):
            # A new volume whose restore did not finish holds no usable data.
            volume_status, message = VolumeStatus.ERROR, f"Restore did not complete: {job.error}"[:1024]
        Volume.objects.filter(pk=job.volume_id, status=VolumeStatus.RESTORING).update(
            status=volume_status, status_message=message, updated_at=timezone.now()
        )


# --- progress, heartbeat and cancellation while running ------------------------------------
class JobContext:
    """What a runner gets besides its job: `progress(done, total, message)` and `cancel()`.

    A daemon thread writes the latest progress and `heartbeat_at` every
    `JOB_HEARTBEAT_SECONDS`, and reads `cancel_requested`. When the job was cancelled, or it
    no longer belongs to this worker (taken over after a stall), `cancel()` turns True so the
    engine stops at its next chunk. Use as a context manager around the runner.
    """

    def __init__(self, job: Job, *, worker: str, interval: float | None = None):
        self.job = job
        self.worker = worker
        self.interval = interval if interval is not None else settings.JOB_HEARTBEAT_SECONDS
        self._done = job.progress_done
        self._total = job.progress_total
        self._message = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.cancel_event = threading.Event()
        self.lost = False
        self._thread: threading.Thread | None = None

    def progress(self, done: int, total: int, message: str = "") -> None:
        with self._lock:
            self._done, self._total, self._message = int(done), int(total), str(message)[:256]

    def cancel(self) -> bool:
        return self.cancel_event.is_set()

    def confirm_ownership(self) -> None:
        """Heartbeat now and raise `JobCancelled` unless this worker still owns the job and no
        cancel was requested. Runners call it right before an irreversible step (a restore's
        swap), so a worker that lost its job between two heartbeats cannot take that step."""
        self.beat()
        self.check_cancel()

    def check_cancel(self) -> None:
        """For runners' own loops: raise `JobCancelled` when cancel was requested."""
        from backups.errors import JobCancelled

        if self.cancel_event.is_set():
            raise JobCancelled()

    def beat(self) -> None:
        """Write progress + heartbeat once and read the cancel flag (the thread calls this)."""
        with self._lock:
            done, total, message = self._done, self._total, self._message
        updated = Job.objects.filter(pk=self.job.pk, status=JobStatus.RUNNING, worker=self.worker).update(
            heartbeat_at=timezone.now(), progress_done=done, progress_total=total, progress_message=message
        )
        if not updated:
            self.lost = True
            self.cancel_event.set()
            return
        if Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            self.cancel_event.set()

    def poll_cancel(self) -> None:
        """Read the cancel flag only (cheaper than a heartbeat; done between heartbeats)."""
        if Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            self.cancel_event.set()

    def _run(self) -> None:
        # The cancel flag is read four times per heartbeat (at least once a second), so a
        # cancel stops a job within about a second even with long heartbeat intervals;
        # heartbeat and progress are written once per interval.
        poll = max(0.05, min(1.0, self.interval / 4))
        last_beat = time.monotonic()
        try:
            while not self._stop.wait(poll):
                try:
                    if time.monotonic() - last_beat >= self.interval:
                        last_beat = time.monotonic()
                        self.beat()
                    else:
                        self.poll_cancel()
                except Exception as error:  # a database hiccup must not kill the job
                    logger.warning("job %s: heartbeat failed (%s)", self.job.pk, type(error).__name__)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> JobContext:
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.job.pk}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.interval, 1) + 30)
        with self._lock:
            done, total, message = self._done, self._total, self._message
        Job.objects.filter(pk=self.job.pk, status=JobStatus.RUNNING, worker=self.worker).update(
            progress_done=done, progress_total=total, progress_message=message
        )
