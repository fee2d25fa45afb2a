"""The catalog queries behind `/metrics`: a fixed number of queries, whatever the fleet size.

`read_catalog(now)` runs eight queries (volumes with their last backups, backup
totals, jobs by kind and status, the newest successful drill per volume, the newest
repository size, persisted counters, worker heartbeats, the bytes of packs no verify has read
within the re-verify window), and a ninth when replication targets are configured (the
oldest backup missing from each target), and returns plain data; `monitoring.collectors` turns it into
metric families. There is no per-volume query: per-volume values come from one grouped query
over volumes and backups, and one over drill jobs.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import NamedTuple

from django.conf import settings
from django.db import connections
from django.db.models import Count, F, FloatField, Func, Max, Min, OuterRef, Subquery
from django.db.models.functions import Coalesce

from backups import pack_verification, replication, selectors
from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus
from monitoring import counters, totals
from monitoring.models import WorkerHeartbeat
from storage_platform.rpo import DEFAULT_RPO_MINUTES
from volumes.models import Volume

# Workers not seen for a day (and cleanly stopped ones) leave the metrics: a scaled-down
# worker must not stay on the dashboard forever.
HEARTBEAT_RETENTION = datetime.timedelta(days=1)
# Key in Job.result under which job runners record the repository size after a job.
REPOSITORY_SIZE_KEY = "repository_size_bytes"


class VolumeRow(NamedTuple):
    """One existing volume; timestamps are unix seconds (None: never happened)."""

    id: str
    name: str
    status: str
    used_bytes: int
    quota_bytes: int
    rpo_minutes: int  # Volume.rpo_minutes: override, else policy, else a day
    created_ts: float
    last_success_ts: float | None
    last_failure_ts: float | None


@dataclass(frozen=True)
class JobGroup:
    kind: str
    status: str
    count: int
    oldest_waiting_since: datetime.datetime | None
    newest_finished_at: datetime.datetime | None
    oldest_heartbeat_at: datetime.datetime | None


@dataclass(frozen=True)
class RepositorySize:
    size_bytes: float
    recorded_at: datetime.datetime | None


@dataclass
class CatalogSnapshot:
    now: datetime.datetime
    volumes: list[VolumeRow] = field(default_factory=list)
    backup_totals: dict[str, float] = field(default_factory=dict)
    job_groups: list[JobGroup] = field(default_factory=list)
    repository: RepositorySize | None = None
    #: volume id -> unix time of its newest succeeded restore drill
    last_drills: dict[str, float] = field(default_factory=dict)
    persisted: dict[counters.CounterKey, float] = field(default_factory=dict)
    heartbeats: list[WorkerHeartbeat] = field(default_factory=list)
    unverified: pack_verification.UnverifiedBytes | None = None
    # Replication: the configured target names, and per target the completion time of the
    # oldest backup that should be on it and is not (`backups.replication`).
    replication_targets: list[str] = field(default_factory=list)
    replication_oldest: dict[str, datetime.datetime] = field(default_factory=dict)


class EpochSeconds(Func):
    """A datetime column as unix seconds (float), computed by the database.

    Why in SQL: converting 30,000 datetimes per scrape in Python (SQLite hands back text) cost
    ~25 ms of a 250 ms budget. SQLite: julianday() rounded to the millisecond (a double of
    julian days carries ~10 µs of noise); PostgreSQL: EXTRACT(EPOCH ...) as double precision.
    """

    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="ROUND((julianday(%(expressions)s) - 2440587.5) * 86400.0, 3)",
                           **extra_context)

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::double precision",
                           **extra_context)


def _uuid_text(value) -> str:
    """The canonical dashed form of a UUID column (SQLite stores 32 hex digits)."""
    if isinstance(value, str) and len(value) == 32:
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(value)


def read_volumes() -> list[VolumeRow]:
    """One query: every existing volume with its newest completed and newest failed backup.

    Reading from volumes (not backups) is what makes a deleted volume's series disappear,
    although its backups and their volume_id stay in the catalog. The two correlated
    subqueries use the (volume, status, completed_at) index of Backup. The rows are read with
    a plain cursor: Django's per-value converters cost more than the query itself here.
    """
    backups = Backup.objects.filter(volume=OuterRef("pk")).order_by()
    newest_success = (
        selectors.newest_completed_backups(volume=OuterRef("pk")).values(at=EpochSeconds("completed_at"))[:1]
    )
    # A failed backup may never have set completed_at: fall back to when it started or was made.
    newest_failure = (
        backups.filter(status=BackupStatus.FAILED)
        .annotate(failed_at=Coalesce("completed_at", "started_at", "created_at"))
        .order_by("-failed_at").values(at=EpochSeconds("failed_at"))[:1]
    )
    queryset = Volume.objects.order_by().values_list(
        "id", "name", "status", "used_bytes", "size_gb", "rpo_minutes_override", "policy__rpo_minutes",
        EpochSeconds("created_at"),
    ).annotate(last_success=Subquery(newest_success), last_failure=Subquery(newest_failure))
    sql, params = queryset.query.sql_with_params()
    volumes = []
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            volume_id, name, status, used, size_gb, override, policy_rpo, created, success, failure = row
            if override is not None:
                rpo_minutes = override
            elif policy_rpo is not None:
                rpo_minutes = policy_rpo
            else:
                rpo_minutes = DEFAULT_RPO_MINUTES
            volumes.append(
                VolumeRow(
                    _uuid_text(volume_id), name, status, used or 0, size_gb * 1024**3, rpo_minutes,
                    float(created), None if success is None else float(success), None if failure is None else float(failure),
                )
            )
    return volumes


def read_job_groups() -> list[JobGroup]:
    """One grouped query: jobs counted by (kind, status) with the timestamps alerts need."""
    rows = (
        Job.objects.values("kind", "status")
        .annotate(
            count=Count("id"),
            # A retried job waits for its backoff (`run_after`): it is queued, not late,
            # until then; its wait counts from when it may run, not from its creation.
            oldest_waiting_since=Min(Coalesce("run_after", "created_at")),
            newest_finished_at=Max("finished_at"),
            oldest_heartbeat_at=Min("heartbeat_at"),
        )
        .order_by()
    )
    return [JobGroup(**row) for row in rows]


def read_last_drills() -> dict[str, float]:
    """One grouped query: volume id -> when its newest succeeded restore drill finished.

    Over drill jobs only (the (status, kind) index of Job), not a correlated subquery per
    volume: a volume has hundreds of backup jobs for each drill, and a per-volume probe of
    its jobs would visit them all on every scrape."""
    rows = (Job.objects.filter(kind=JobKind.DRILL, status=JobStatus.SUCCEEDED, volume__isnull=False,
                               finished_at__isnull=False)
            .order_by().values("volume_id").annotate(at=Max(EpochSeconds("finished_at"))).values_list("volume_id", "at"))
    return {_uuid_text(volume_id): float(at) for volume_id, at in rows}


def read_repository_size() -> RepositorySize | None:
    """The repository size recorded by the newest succeeded job that recorded one.

    Storage is never walked at scrape time: listing an S3 bucket per scrape would be slow
    and cost money. Job runners record `result["repository_size_bytes"]` (see docs/metrics.md).
    """
    row = (
        Job.objects.filter(status=JobStatus.SUCCEEDED, result__has_key=REPOSITORY_SIZE_KEY)
        .order_by(F("finished_at").desc(nulls_last=True))
        .values_list("result", "finished_at")
        .first()
    )
    if row is None:
        return None
    result, finished_at = row
    value = result.get(REPOSITORY_SIZE_KEY) if isinstance(result, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return RepositorySize(size_bytes=float(value), recorded_at=finished_at)


def read_heartbeats(now: datetime.datetime) -> list[WorkerHeartbeat]:
    return list(
        WorkerHeartbeat.objects.filter(stopped_at__isnull=True, last_seen_at__gte=now - HEARTBEAT_RETENTION)
    )


def read_catalog(now: datetime.datetime) -> CatalogSnapshot:
    """Everything the collector exposes, read in eight queries (nine with replication)."""
    targets = sorted(getattr(settings, "REPLICATION_TARGETS", None) or {})
    return CatalogSnapshot(
        now=now,
        volumes=read_volumes(),
        backup_totals=totals.backup_totals_aggregates(Backup.objects.order_by()),
        job_groups=read_job_groups(),
        last_drills=read_last_drills(),
        repository=read_repository_size(),
        persisted=counters.read_all(),
        heartbeats=read_heartbeats(now),
        unverified=pack_verification.unverified_bytes(now),
        replication_targets=targets,
        replication_oldest=replication.oldest_unreplicated() if targets else {},
    )
