"""What the admin index shows: protection at a glance, what runs, what failed, the repository,
maintenance and the health of the worker fleet. Reads only; a fixed number of queries
whatever the number of volumes (the volume query is the metrics' one).

`build_overview(now)` returns plain data for the `console_overview` template tag.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.conf import settings

from backups import selectors
from backups.models import ACTIVE_JOB_STATUSES, Job, JobKind, JobStatus, Policy
from monitoring.catalog import read_heartbeats, read_repository_size
from monitoring.protection import RpoStatus, VolumeProtection, all_volumes

LISTED_VOLUMES = 25  # late / never-backed-up volumes named on the page; the counts cover all
LISTED_JOBS = 20
FAILED_WINDOW = datetime.timedelta(hours=24)
# Beat runs the reconciler every 60 s, and django-celery-beat's DatabaseScheduler writes
# `last_run_at` back every 3 minutes: a beat silent for longer than both is not running.
BEAT_TASK = "platform:reconcile-jobs"
BEAT_SILENT_AFTER = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class JobRow:
    """A job with its progress as the API reports it (bytes done/total, percent, message)."""

    job: Job
    progress: dict


@dataclass(frozen=True)
class RepositorySummary:
    size_bytes: float | None  # as measured by the newest prune; None before the first one
    measured_at: datetime.datetime | None
    logical_bytes: int  # what the kept backups hold, before dedup and compression
    stored_bytes: int  # what those backups wrote (new data, compressed and encrypted)

    @property
    def dedup_ratio(self) -> float | None:
        """Logical size of the kept backups per stored byte (PBS's "deduplication factor")."""
        stored = self.size_bytes if self.size_bytes else self.stored_bytes
        return round(self.logical_bytes / stored, 1) if stored else None


@dataclass(frozen=True)
class Maintenance:
    kind: str  # verify | prune
    last: Job | None  # newest finished job (prune: not a dry run)
    last_success: Job | None
    active: Job | None
    latest_tick: datetime.datetime | None  # the newest scheduled time already passed
    next_tick: datetime.datetime | None

    @property
    def due(self) -> bool:
        """A scheduled run has passed since the last successful one (or none ever succeeded)."""
        if self.latest_tick is None:  # not scheduled by any enabled policy
            return False
        return self.last_success is None or (self.last_success.finished_at or self.latest_tick) < self.latest_tick


@dataclass(frozen=True)
class Heartbeat:
    name: str
    last_seen: datetime.datetime | None
    alive: bool
    detail: str = ""


@dataclass
class Overview:
    now: datetime.datetime
    counts: dict[str, int] = field(default_factory=dict)  # ok / late / never
    late: list[VolumeProtection] = field(default_factory=list)
    never: list[VolumeProtection] = field(default_factory=list)
    running: list[JobRow] = field(default_factory=list)
    queued: int = 0
    failed: list[Job] = field(default_factory=list)
    repository: RepositorySummary | None = None
    maintenance: list[Maintenance] = field(default_factory=list)
    workers: list[Heartbeat] = field(default_factory=list)
    beat: Heartbeat | None = None

    @property
    def volumes(self) -> int:
        return sum(self.counts.values())


def protection(now: datetime.datetime) -> tuple[dict[str, int], list[VolumeProtection], list[VolumeProtection]]:
    volumes = all_volumes(now)
    counts = {status: 0 for status in RpoStatus.values}
    for volume in volumes:
        counts[volume.status] += 1
    late = sorted((v for v in volumes if v.status == RpoStatus.LATE), key=lambda v: v.age, reverse=True)
    never = sorted((v for v in volumes if v.status == RpoStatus.NEVER), key=lambda v: v.name)
    return counts, late[:LISTED_VOLUMES], never[:LISTED_VOLUMES]


def running_jobs(limit: int = LISTED_JOBS) -> tuple[list[JobRow], int]:
    """(running jobs, oldest first, with their progress; number of queued jobs)."""
    from backups.serializers import job_progress

    running = (Job.objects.filter(status=JobStatus.RUNNING).select_related("volume")
               .order_by("started_at", "created_at")[:limit])
    return [JobRow(job, job_progress(job)) for job in running], Job.objects.filter(status=JobStatus.QUEUED).count()


def failed_jobs(now: datetime.datetime):
    return (Job.objects.filter(status=JobStatus.FAILED, finished_at__gte=now - FAILED_WINDOW)
            .select_related("volume").order_by("-finished_at"))


def repository_summary() -> RepositorySummary:
    measured = read_repository_size()
    kept = selectors.completed_backups().order_by()
    logical = stored = 0
    # Two keys of a JSON column summed in Python: one pass over (stats) rows of kept backups.
    for stats in kept.values_list("stats", flat=True).iterator(chunk_size=2000):
        if isinstance(stats, dict):
            logical += int(stats.get("bytes_total") or stats.get("bytes_read") or 0)
            stored += int(stats.get("bytes_stored") or 0)
    return RepositorySummary(size_bytes=measured.size_bytes if measured else None,
                             measured_at=measured.recorded_at if measured else None,
                             logical_bytes=logical, stored_bytes=stored)


def _ticks(expressions: list[tuple[str, str]], now: datetime.datetime):
    from backups.scheduling import cron

    latest = upcoming = None
    for expression, time_zone in expressions:
        try:
            schedule = cron.parse(expression, time_zone)
        except cron.InvalidSchedule:
            continue
        previous, following = cron.previous_run(schedule, now), cron.next_run(schedule, now)
        latest = previous if latest is None or previous > latest else latest
        upcoming = following if upcoming is None or following < upcoming else upcoming
    return latest, upcoming


def maintenance(now: datetime.datetime) -> list[Maintenance]:
    policies = list(Policy.objects.filter(enabled=True))
    found = []
    for kind, schedule_field in ((JobKind.VERIFY, "verify_schedule"), (JobKind.PRUNE, "prune_schedule")):
        jobs = Job.objects.filter(kind=kind)
        if kind == JobKind.PRUNE:
            jobs = jobs.exclude(params__dry_run=True)
        finished = jobs.filter(finished_at__isnull=False).order_by("-finished_at")
        latest, upcoming = _ticks([(getattr(p, schedule_field), p.timezone) for p in policies
                                   if getattr(p, schedule_field)], now)
        found.append(Maintenance(
            kind=kind, last=finished.first(), last_success=finished.filter(status=JobStatus.SUCCEEDED).first(),
            active=jobs.filter(status__in=ACTIVE_JOB_STATUSES).order_by("created_at").first(),
            latest_tick=latest, next_tick=upcoming,
        ))
    return found


def heartbeats(now: datetime.datetime) -> tuple[list[Heartbeat], Heartbeat]:
    stale_after = datetime.timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    workers = [Heartbeat(name=row.worker, last_seen=row.last_seen_at, alive=now - row.last_seen_at <= stale_after,
                         detail=row.queues)
               for row in read_heartbeats(now)]
    from django_celery_beat.models import PeriodicTask

    beat_seen = PeriodicTask.objects.filter(name=BEAT_TASK).values_list("last_run_at", flat=True).first()
    beat = Heartbeat(name="beat", last_seen=beat_seen,
                     alive=beat_seen is not None and now - beat_seen <= BEAT_SILENT_AFTER,
                     detail=f"reconciler run by beat ({BEAT_TASK})")
    return workers, beat


def build_overview(now: datetime.datetime) -> Overview:
    counts, late, never = protection(now)
    running, queued = running_jobs()
    workers, beat = heartbeats(now)
    return Overview(
        now=now, counts=counts, late=late, never=never, running=running, queued=queued,
        failed=list(failed_jobs(now)[:LISTED_JOBS]),
        repository=repository_summary(), maintenance=maintenance(now), workers=workers, beat=beat,
    )
