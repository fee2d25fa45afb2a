"""Celery beat with django-celery-beat's database scheduler, recording that its loop turns.

`/ready` reports beat's liveness from the `SchedulerTick` row this scheduler keeps: the row is
written when beat starts, again at most every JOB_HEARTBEAT_SECONDS from `tick()` (beat's
loop calls it at least every few seconds), and marked stopped from `close()` on a clean
shutdown. A beat that hangs stops ticking, so its row ages; one that crashed keeps its last
tick; one stopped cleanly says so at once.

Use it as the scheduler: `celery -A storage_platform beat --scheduler
monitoring.scheduler:DatabaseScheduler` (the default `CELERY_BEAT_SCHEDULER`).
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler as BaseDatabaseScheduler

from monitoring.models import SchedulerTick

logger = logging.getLogger(__name__)

SCHEDULER_NAME = "beat"


def record_tick(now: datetime.datetime | None = None, *, starting: bool = False, name: str = SCHEDULER_NAME) -> None:
    """Record one tick of the scheduler `name` (a restart also resets its start time)."""
    now = now or timezone.now()
    defaults = {"hostname": socket.gethostname(), "pid": os.getpid(), "last_tick_at": now, "stopped_at": None}
    if starting:
        defaults["started_at"] = now
        SchedulerTick.objects.update_or_create(name=name, defaults=defaults)
    elif not SchedulerTick.objects.filter(name=name).update(**defaults):
        SchedulerTick.objects.create(name=name, started_at=now, **defaults)


def record_stop(now: datetime.datetime | None = None, *, name: str = SCHEDULER_NAME) -> None:
    SchedulerTick.objects.filter(name=name).update(stopped_at=now or timezone.now())


class DatabaseScheduler(BaseDatabaseScheduler):
    """django-celery-beat's `DatabaseScheduler` that also records its ticks (module docstring)."""

    def __init__(self, *args, **kwargs):
        self._tick_recorded = None
        super().__init__(*args, **kwargs)

    def _record(self, starting: bool = False) -> None:
        try:
            close_old_connections()
            record_tick(starting=starting)
            self._tick_recorded = time.monotonic()
        except Exception as error:  # a database hiccup must not stop the schedules
            logger.warning("beat tick not recorded: %s", type(error).__name__)

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        every = float(getattr(settings, "JOB_HEARTBEAT_SECONDS", 10))
        if self._tick_recorded is None or time.monotonic() - self._tick_recorded >= every:
            self._record(starting=self._tick_recorded is None)
        # Wake up in time for the next recording even when no schedule is due sooner.
        return min(interval, every) if interval else interval

    def close(self):
        try:
            super().close()
        finally:
            try:
                close_old_connections()
                record_stop()
            except Exception as error:
                logger.warning("beat stop not recorded: %s", type(error).__name__)
