"""A running job's heartbeat thread: progress, liveness and the cancel flag."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from backups.errors import JobCancelled
from backups.models import Job, JobStatus

logger = logging.getLogger(__name__)


class JobContext:
    """What a runner gets besides its job: `progress(done, total, message)` and `cancel()`.

    A daemon thread writes `heartbeat_at` every `JOB_HEARTBEAT_SECONDS`, and the latest
    progress (with a heartbeat) within `JOB_PROGRESS_SECONDS` of any change, and reads
    `cancel_requested`. When the job was cancelled, or it
    no longer belongs to this worker (taken over after a stall), `cancel()` turns True so the
    engine stops at its next chunk. Use as a context manager around the runner.
    """

    def __init__(self, job: Job, *, worker: str, interval: float | None = None):
        self.job = job
        self.worker = worker
        self.interval = interval if interval is not None else settings.JOB_HEARTBEAT_SECONDS
        self.progress_every = min(settings.JOB_PROGRESS_SECONDS, self.interval)
        self._done = job.progress_done
        self._total = job.progress_total
        self._message = ""
        # Bumped by every progress report; `beat` remembers which one it wrote.
        self._version = self._written_version = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.cancel_event = threading.Event()
        self.lost = False
        self._thread: threading.Thread | None = None

    def progress(self, done: int, total: int, message: str = "") -> None:
        with self._lock:
            self._done, self._total, self._message = int(done), int(total), str(message)[:256]
            self._version += 1

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
        if self.cancel_event.is_set():
            raise JobCancelled()

    def beat(self) -> None:
        """Write progress + heartbeat once and read the cancel flag (the thread calls this)."""
        with self._lock:
            done, total, message, version = self._done, self._total, self._message, self._version
        updated = Job.objects.filter(pk=self.job.pk, status=JobStatus.RUNNING, worker=self.worker).update(
            heartbeat_at=timezone.now(), progress_done=done, progress_total=total, progress_message=message
        )
        self._written_version = version
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

    def _progress_pending(self) -> bool:
        with self._lock:
            return self._version != self._written_version

    def _run(self) -> None:
        # The cancel flag is read at every tick (at least once a second), so a cancel stops a
        # job within about a second even with long heartbeat intervals. The heartbeat is
        # written once per interval, and a changed progress once per `progress_every` (it
        # carries a heartbeat too); a tick can come one poll late, so progress is written one
        # poll early and two writes are never more than `progress_every` apart.
        progress_every = self.progress_every
        poll = max(0.05, min(1.0, self.interval / 4, progress_every / 4))
        last_beat = time.monotonic()
        try:
            while not self._stop.wait(poll):
                try:
                    since = time.monotonic() - last_beat
                    if since >= self.interval or (since >= progress_every - poll and self._progress_pending()):
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
