"""Worker heartbeats: every Celery worker process records that it is alive, busy or idle.

Job.heartbeat_at only moves while a job runs, so an idle fleet would look dead. On
`worker_ready` a daemon thread in the worker's main process upserts its `WorkerHeartbeat`
row every JOB_HEARTBEAT_SECONDS; on `worker_shutdown` it marks the row stopped, so a clean
scale-down does not page anyone while a crashed worker does (its heartbeat just ages).
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
from collections.abc import Callable

from celery import signals
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from monitoring.models import WorkerHeartbeat

logger = logging.getLogger(__name__)


def beat(worker: str, queues: str = "", now: datetime.datetime | None = None, started_at: datetime.datetime | None = None) -> None:
    """Record one heartbeat of `worker` (insert or update; safe to call from many processes)."""
    now = now or timezone.now()
    updated = WorkerHeartbeat.objects.filter(worker=worker).update(last_seen_at=now, stopped_at=None, pid=os.getpid())
    if not updated:
        WorkerHeartbeat.objects.update_or_create(
            worker=worker,
            defaults={
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "queues": queues[:512],
                "started_at": started_at or now,
                "last_seen_at": now,
                "stopped_at": None,
            },
        )


def mark_stopped(worker: str, now: datetime.datetime | None = None) -> None:
    WorkerHeartbeat.objects.filter(worker=worker).update(stopped_at=now or timezone.now())


class HeartbeatThread(threading.Thread):
    """Calls `beat` every `interval` seconds until `stop()`; database errors are logged and retried."""

    def __init__(self, worker: str, queues: str, interval: float, clock: Callable[[], datetime.datetime] = timezone.now):
        super().__init__(name="monitoring-heartbeat", daemon=True)
        self.worker, self.queues, self.interval, self.clock = worker, queues, interval, clock
        self.started_at = clock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                try:
                    close_old_connections()
                    beat(self.worker, self.queues, now=self.clock(), started_at=self.started_at)
                except Exception as error:  # a database hiccup must not kill the heartbeat
                    logger.warning("worker heartbeat not recorded: %s", type(error).__name__)
                self._stop_event.wait(self.interval)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop_event.set()


_thread: HeartbeatThread | None = None


def _on_worker_ready(sender=None, **kwargs) -> None:
    """`sender` is the worker's Consumer: it knows the node name and the queues consumed."""
    global _thread
    worker = getattr(sender, "hostname", None) or f"celery@{socket.gethostname()}"
    try:
        queues = ",".join(sorted(sender.app.amqp.queues.consume_from))
    except Exception:  # the queue list is informative only
        queues = ""
    _thread = HeartbeatThread(worker, queues, float(getattr(settings, "JOB_HEARTBEAT_SECONDS", 10)))
    _thread.start()


def _on_worker_shutdown(sender=None, **kwargs) -> None:
    if _thread is None:
        return
    _thread.stop()
    _thread.join(timeout=5)
    try:
        mark_stopped(_thread.worker)
    except Exception as error:
        logger.warning("worker stop not recorded: %s", type(error).__name__)
    finally:
        connection.close()


def connect() -> None:
    signals.worker_ready.connect(_on_worker_ready, dispatch_uid="monitoring.heartbeat.ready", weak=False)
    signals.worker_shutdown.connect(_on_worker_shutdown, dispatch_uid="monitoring.heartbeat.shutdown", weak=False)
