"""Custom Prometheus collectors: catalog values computed from the database at scrape time.

`CatalogCollector` reads the catalog with a fixed number of queries (`monitoring.catalog`)
and yields metric families; nothing is kept in process memory between scrapes, so every API
process answers the same and a restart changes nothing. Counters are catalog totals plus the
persisted share of deleted rows (`monitoring.counters`), so they never go down.

The clock is injected (`clock=`) so tests can age backups without sleeping. Registration is
idempotent (`register_collectors`), and `describe()` returns nothing so that
registering never queries the database (prometheus_client would otherwise call `collect()`).
See docs/metrics.md for the catalog of names, labels and meanings.
"""

from __future__ import annotations

import datetime
import platform
import threading
import time
from collections.abc import Callable, Iterable

import django
from django.conf import settings
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Sample

from backups import replication
from backups.models import FINISHED_JOB_STATUSES, JobKind, JobStatus
from monitoring import totals
from monitoring.catalog import CatalogSnapshot, read_catalog
from monitoring.counters import canonical_labels
from storage_platform.rpo import seconds_from_minutes
from volumes.models import VolumeStatus

Clock = Callable[[], datetime.datetime]
VOLUME_LABELS = ["volume", "volume_id"]
ACTIVE_STATES = (JobStatus.QUEUED, JobStatus.RUNNING)


def _timestamp(moment: datetime.datetime) -> float:
    return moment.timestamp()


class CatalogCollector:
    """Catalog metrics (volumes, backups, jobs, repository, workers), computed per scrape."""

    def __init__(self, clock: Clock = timezone.now, read: Callable[[datetime.datetime], CatalogSnapshot] = read_catalog):
        self.clock = clock
        self.read = read

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        started = time.perf_counter()
        snapshot = self.read(self.clock())
        yield from self._volume_metrics(snapshot)
        yield from self._backup_counters(snapshot)
        yield from self._job_metrics(snapshot)
        yield from self._repository_metrics(snapshot)
        yield from self._verification_metrics(snapshot)
        yield from self._replication_metrics(snapshot)
        yield from self._worker_metrics(snapshot)
        yield _build_info()
        yield GaugeMetricFamily(
            "storage_platform_catalog_collect_seconds",
            "Time this process took to compute the catalog metrics of this scrape.",
            value=time.perf_counter() - started,
        )

    # -- volumes ------------------------------------------------------------------------
    def _volume_metrics(self, snapshot: CatalogSnapshot) -> Iterable[Metric]:
        now = snapshot.now
        count = GaugeMetricFamily("storage_volume_count", "Number of volumes in the catalog.", value=len(snapshot.volumes))
        by_status = GaugeMetricFamily("storage_volumes", "Number of volumes by status.", labels=["status"])
        used = GaugeMetricFamily("volume_used_bytes", "Bytes used by the volume's data.", labels=VOLUME_LABELS)
        quota = GaugeMetricFamily("volume_quota_bytes", "Quota of the volume in bytes.", labels=VOLUME_LABELS)
        last_success = GaugeMetricFamily(
            "backup_last_success_timestamp",
            "Unix time of the volume's newest completed backup (absent if never backed up).",
            labels=VOLUME_LABELS,
        )
        last_failure = GaugeMetricFamily(
            "backup_last_failure_timestamp",
            "Unix time of the volume's newest failed backup (absent if none failed).",
            labels=VOLUME_LABELS,
        )
        last_failed = GaugeMetricFamily(
            "backup_last_attempt_failed",
            "1 when the volume's newest finished backup failed, else 0.",
            labels=VOLUME_LABELS,
        )
        last_drill = GaugeMetricFamily(
            "backup_last_drill_timestamp",
            "Unix time the volume's newest succeeded restore drill finished (absent if never drilled).",
            labels=VOLUME_LABELS,
        )
        violation = GaugeMetricFamily(
            "backup_rpo_violation",
            "1 when the newest completed backup (or, never backed up, the volume's creation) is older than the RPO.",
            labels=VOLUME_LABELS,
        )
        objective = GaugeMetricFamily(
            "backup_rpo_seconds",
            "The volume's RPO in seconds (override, else policy, else a day): alert rules compare "
            "time() - backup_last_success_timestamp with it.",
            labels=VOLUME_LABELS,
        )
        statuses = dict.fromkeys(VolumeStatus.values, 0)
        now_ts = now.timestamp()
        # Samples are appended directly with one shared label dict per volume: add_metric()
        # builds a new dict per sample, and the exposition renders each dict once (see
        # monitoring.exposition), which is what keeps a 10,000-volume scrape fast.
        used_samples, quota_samples = used.samples, quota.samples
        success_samples, failure_samples = last_success.samples, last_failure.samples
        failed_samples, violation_samples = last_failed.samples, violation.samples
        drill_samples, last_drills = last_drill.samples, snapshot.last_drills
        objective_samples = objective.samples
        for volume in snapshot.volumes:
            labels = {"volume": volume.name, "volume_id": volume.id}
            statuses[volume.status] = statuses.get(volume.status, 0) + 1
            used_samples.append(Sample("volume_used_bytes", labels, volume.used_bytes))
            quota_samples.append(Sample("volume_quota_bytes", labels, volume.quota_bytes))
            rpo_seconds = seconds_from_minutes(volume.rpo_minutes)
            objective_samples.append(Sample("backup_rpo_seconds", labels, rpo_seconds))
            reference = volume.last_success_ts if volume.last_success_ts is not None else volume.created_ts
            violation_samples.append(Sample("backup_rpo_violation", labels, 1 if now_ts - reference > rpo_seconds else 0))
            if volume.last_success_ts is not None:
                success_samples.append(Sample("backup_last_success_timestamp", labels, volume.last_success_ts))
            if volume.last_failure_ts is not None:
                failure_samples.append(Sample("backup_last_failure_timestamp", labels, volume.last_failure_ts))
            failed = volume.last_failure_ts is not None and (
                volume.last_success_ts is None or volume.last_failure_ts > volume.last_success_ts
            )
            failed_samples.append(Sample("backup_last_attempt_failed", labels, 1 if failed else 0))
            drilled = last_drills.get(volume.id)
            if drilled is not None:
                drill_samples.append(Sample("backup_last_drill_timestamp", labels, drilled))
        for status, number in sorted(statuses.items()):
            by_status.add_metric([status], number)
        yield from (count, by_status, used, quota, last_success, last_failure, last_failed, violation, objective,
                    last_drill)

    # -- backups: counters, bytes, durations ----------------------------------------------
    def _backup_counters(self, snapshot: CatalogSnapshot) -> Iterable[Metric]:
        values = {}
        for name, labels, value in totals.totals_to_counters(snapshot.backup_totals):
            values[(name, canonical_labels(labels))] = value + snapshot.persisted.get((name, canonical_labels(labels)), 0.0)

        def value_of(name: str, **labels: str) -> float:
            return values[(name, canonical_labels(labels))]

        operations = CounterMetricFamily(
            "backup_operations", "Finished backups by result (success: completed, failure: failed).", labels=["result"]
        )
        for result in ("success", "failure"):
            operations.add_metric([result], value_of(totals.OPERATIONS, result=result))
        yield operations
        yield CounterMetricFamily("backup_failures", "Backups that failed.", value=value_of(totals.FAILURES))
        descriptions = {
            "bytes_read": "Bytes read from volumes by completed backups.",
            "bytes_new": "Bytes of new (not deduplicated) data found by completed backups.",
            "bytes_stored": "Bytes written to the repository (compressed, encrypted) by completed backups.",
        }
        for field in totals.BYTE_FIELDS:
            yield CounterMetricFamily(f"backup_{field}", descriptions[field], value=value_of(totals.BYTES[field]))
        buckets = [
            (totals.bucket_label(bound), value_of(totals.DURATION_BUCKET, le=totals.bucket_label(bound)))
            for bound in totals.DURATION_BUCKETS
        ]
        yield HistogramMetricFamily(
            "backup_duration_seconds",
            "Duration of completed backups (stats.duration_seconds).",
            buckets=buckets,
            sum_value=value_of(totals.DURATION_SUM),
        )

    # -- jobs: queue depth, finished counters, last results -------------------------------
    def _job_metrics(self, snapshot: CatalogSnapshot) -> Iterable[Metric]:
        now = snapshot.now
        kinds = list(JobKind.values)
        depth = GaugeMetricFamily("backup_jobs", "Jobs waiting or running, by kind and state.", labels=["state", "kind"])
        oldest_queued = GaugeMetricFamily(
            "backup_jobs_oldest_queued_age_seconds", "Seconds the oldest queued job has been waiting to run (since creation, or since its retry backoff ended; 0 when none).", labels=["kind"]
        )
        heartbeat_age = GaugeMetricFamily(
            "backup_jobs_running_heartbeat_age_seconds",
            "Age of the stalest heartbeat among running jobs (0 when none run).",
            labels=["kind"],
        )
        finished = CounterMetricFamily(
            "backup_job_finished", "Finished jobs (backup, restore, verify, prune, drill) by result.", labels=["kind", "result"]
        )
        last_finished = GaugeMetricFamily(
            "backup_job_last_finished_timestamp", "Unix time the newest job of this kind and result finished.",
            labels=["kind", "result"],
        )
        last_result = GaugeMetricFamily(
            "backup_job_last_result",
            "1 when the newest finished job of this kind succeeded, 0 when it failed (cancelled jobs ignored).",
            labels=["kind"],
        )
        groups = {(group.kind, group.status): group for group in snapshot.job_groups}
        for kind in kinds:
            for state in ACTIVE_STATES:
                group = groups.get((kind, state))
                depth.add_metric([state, kind], group.count if group else 0)
            queued = groups.get((kind, JobStatus.QUEUED))
            age = (now - queued.oldest_waiting_since).total_seconds() if queued and queued.oldest_waiting_since else 0.0
            oldest_queued.add_metric([kind], max(age, 0.0))
            running = groups.get((kind, JobStatus.RUNNING))
            stale = (now - running.oldest_heartbeat_at).total_seconds() if running and running.oldest_heartbeat_at else 0.0
            heartbeat_age.add_metric([kind], max(stale, 0.0))
            newest: dict[str, datetime.datetime] = {}
            for status in FINISHED_JOB_STATUSES:
                group = groups.get((kind, status))
                persisted = snapshot.persisted.get((totals.JOB_FINISHED, canonical_labels({"kind": kind, "result": status})), 0.0)
                finished.add_metric([kind, status], (group.count if group else 0) + persisted)
                if group and group.newest_finished_at:
                    newest[status] = group.newest_finished_at
                    last_finished.add_metric([kind, status], _timestamp(group.newest_finished_at))
            succeeded, failed = newest.get(JobStatus.SUCCEEDED), newest.get(JobStatus.FAILED)
            if succeeded or failed:
                ok = failed is None or (succeeded is not None and succeeded >= failed)
                last_result.add_metric([kind], 1.0 if ok else 0.0)
        yield from (depth, oldest_queued, heartbeat_age, finished, last_finished, last_result)
        # The same count as backup_job_finished_total{kind="drill", result="failed"}, under the
        # name alerts and dashboards about drills use.
        drill_failures = groups.get((JobKind.DRILL, JobStatus.FAILED))
        persisted = snapshot.persisted.get((totals.JOB_FINISHED, canonical_labels({"kind": JobKind.DRILL,
                                                                                   "result": JobStatus.FAILED})), 0.0)
        yield CounterMetricFamily("backup_drill_failures", "Restore drills that failed (damage, differences, errors).",
                                  value=(drill_failures.count if drill_failures else 0) + persisted)

    # -- repository ---------------------------------------------------------------------
    def _repository_metrics(self, snapshot: CatalogSnapshot) -> Iterable[Metric]:
        if snapshot.repository is None:
            return
        yield GaugeMetricFamily(
            "backup_repository_size_bytes",
            "Repository size recorded by the newest job that measured it (storage is not walked at scrape).",
            value=snapshot.repository.size_bytes,
        )
        if snapshot.repository.recorded_at is not None:
            yield GaugeMetricFamily(
                "backup_repository_size_recorded_timestamp",
                "Unix time the repository size was recorded.",
                value=_timestamp(snapshot.repository.recorded_at),
            )

    # -- verification coverage ----------------------------------------------------------
    def _verification_metrics(self, snapshot: CatalogSnapshot) -> Iterable[Metric]:
        if snapshot.unverified is None:
            return
        unverified = GaugeMetricFamily(
            "backup_unverified_bytes",
            f"Bytes of packs no verify has read within VERIFY_REVERIFY_DAYS ({settings.VERIFY_REVERIFY_DAYS} d): "
            "pending = never verified, known for less than that; overdue = not read for longer than that.",
            labels=["state"],
        )
        unverified.add_metric(["pending"], snapshot.unverified.pending)
        unverified.add_metric(["overdue"], snapshot.unverified.overdue)
        yield unverified

    # -- replication --------------------------------------------------------------------
    def _replication_metrics(self, snapshot: CatalogSnapshot) -> Iterable[Metric]:
        if not snapshot.replication_targets:
            return
        lag = GaugeMetricFamily(
            "backup_replication_lag_seconds",
            "Seconds since the oldest completed, not forgotten backup of a replicated policy that is not yet on "
            "this replication target completed (0 when all are).",
            labels=["target"],
        )
        # A name a policy still uses after the operator removed it from the settings shows
        # too: its lag grows, which is the truth.
        for target in sorted(set(snapshot.replication_targets) | set(snapshot.replication_oldest)):
            lag.add_metric([target], replication.lag_seconds(snapshot.replication_oldest, target, snapshot.now))
        yield lag

    # -- workers ------------------------------------------------------------------------
    def _worker_metrics(self, snapshot: CatalogSnapshot) -> Iterable[Metric]:
        stale_after = getattr(settings, "JOB_STALE_AFTER_SECONDS", 120)
        last_seen = GaugeMetricFamily(
            "backup_worker_last_heartbeat_timestamp", "Unix time of the worker's newest heartbeat.", labels=["worker"]
        )
        alive = 0
        for heartbeat in snapshot.heartbeats:
            last_seen.add_metric([heartbeat.worker], _timestamp(heartbeat.last_seen_at))
            if (snapshot.now - heartbeat.last_seen_at).total_seconds() <= stale_after:
                alive += 1
        yield last_seen
        yield GaugeMetricFamily(
            "backup_workers_alive",
            f"Workers whose heartbeat is at most JOB_STALE_AFTER_SECONDS ({stale_after} s) old.",
            value=alive,
        )


def _git_revision() -> str | None:
    """The revision /version reports (GIT_REVISION or .git), when that module is present."""
    try:
        from storage_platform.system import git_revision
    except ImportError:
        return None
    try:
        return git_revision()
    except Exception:  # the revision is informative only
        return None


def _build_info() -> Metric:
    info = GaugeMetricFamily(
        "storage_platform_build_info",
        "Always 1; the labels name the running build.",
        labels=["version", "revision", "python_version", "django_version"],
    )
    version = getattr(settings, "PLATFORM_VERSION", None) or settings.SPECTACULAR_SETTINGS.get("VERSION", "unknown")
    revision = getattr(settings, "BUILD_REVISION", None) or _git_revision() or "unknown"
    info.add_metric([str(version), str(revision), platform.python_version(), django.get_version()], 1)
    return info


# The platform's collectors live in their own registries, rendered by monitoring.exposition
# (fast) next to django-prometheus's default REGISTRY (rendered by prometheus_client): the
# catalog (which monitoring.cached may serve from a shared render) and the live gauges.
CATALOG_REGISTRY = CollectorRegistry(auto_describe=False)
LIVE_REGISTRY = CollectorRegistry(auto_describe=False)
_registered = False
_registration_lock = threading.Lock()


def register_collectors() -> None:
    """Register the platform's collectors once (safe to call repeatedly)."""
    global _registered
    from monitoring.readiness import ReadinessCollector
    from monitoring.repository_key import RepositoryKeyCollector

    with _registration_lock:
        if _registered:
            return
        CATALOG_REGISTRY.register(CatalogCollector())
        LIVE_REGISTRY.register(ReadinessCollector())
        LIVE_REGISTRY.register(RepositoryKeyCollector())
        _registered = True
