"""State the metrics need that is not already a catalog row.

`MetricCounter` keeps the part of a counter that can no longer be derived from the catalog
(rows that were deleted), so every counter survives restarts, agrees across processes and
never goes down. `WorkerHeartbeat` records that a Celery worker process is alive even when it
runs no job (Job.heartbeat_at only moves while a job runs).
"""

from __future__ import annotations

from django.db import models


class MetricCounter(models.Model):
    """One persisted counter sample: a metric name, its labels (canonical JSON) and a value.

    Contract: values only ever grow; they are changed with `monitoring.counters.increment`,
    which is atomic under concurrent writers (an UPDATE ... SET value = value + n).
    """

    name = models.CharField(max_length=128)
    # Canonical JSON of the label set (sorted keys, no spaces) so equal label sets collide.
    labels = models.CharField(max_length=512, default="{}")
    value = models.FloatField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="monitoring_counter_unique")]

    def __str__(self) -> str:
        return f"{self.name}{self.labels} = {self.value}"


class WorkerHeartbeat(models.Model):
    """The last sign of life of one worker process (Celery hostname, e.g. `celery@node-1`)."""

    worker = models.CharField(max_length=255, unique=True)
    hostname = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    queues = models.CharField(max_length=512, blank=True, default="")
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    # Set on a clean shutdown, so a stopped worker is not mistaken for a hung one.
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["worker"]

    def __str__(self) -> str:
        return f"{self.worker} seen {self.last_seen_at:%Y-%m-%d %H:%M:%S}"


class CatalogExposition(models.Model):
    """The catalog metrics as last rendered (one row), shared by every API process.

    Used only when `METRICS_CACHE_SECONDS` is set (see `monitoring.cached`): a scrape serves
    this text and, when it is older than that, one process renders a new one in the
    background. `refreshing_since` is that process's claim, so two never render at once.
    """

    body = models.TextField(default="")
    rendered_at = models.FloatField(default=0)  # unix time the render started (its data's age)
    render_seconds = models.FloatField(default=0)
    refreshing_since = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"catalog exposition rendered at {self.rendered_at:.0f} ({len(self.body)} bytes)"


class SchedulerTick(models.Model):
    """The last turn of Celery beat's scheduling loop (one row per scheduler, normally one).

    Written by `monitoring.scheduler.DatabaseScheduler` every JOB_HEARTBEAT_SECONDS while its
    loop runs, and marked stopped when beat shuts down cleanly, so `/ready` can tell a beat
    that runs from one that stopped or hangs.
    """

    name = models.CharField(max_length=255, unique=True)
    hostname = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    last_tick_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ticked {self.last_tick_at:%Y-%m-%d %H:%M:%S}"
