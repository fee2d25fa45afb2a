"""Catalog rows for monitoring tests (created directly: the backup runner is not needed)."""

from __future__ import annotations

import datetime
import uuid

from prometheus_client.parser import text_string_to_metric_families

from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus, Policy
from volumes.models import Volume

#: The tests' "now": the real clock, read once. Rows are aged relative to it, and live
#: servers (test client, gunicorn, Prometheus) judge them by the real clock, so a fixed
#: date here would make every age grow by a day for each day since it was written.
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def hours_ago(hours: float) -> datetime.datetime:
    return NOW - datetime.timedelta(hours=hours)


def make_volume(name: str, *, created_hours_ago: float = 100, policy: Policy | None = None, **fields) -> Volume:
    fields.setdefault("size_gb", 10)
    fields.setdefault("status", "available")
    volume = Volume.objects.create(name=name, policy=policy, **fields)
    # created_at is auto_now_add: set the age afterwards.
    Volume.objects.filter(pk=volume.pk).update(created_at=hours_ago(created_hours_ago))
    volume.refresh_from_db()
    return volume


def make_backup(volume: Volume, status: str = BackupStatus.COMPLETED, *, finished_hours_ago: float = 1,
                stats: dict | None = None) -> Backup:
    finished = hours_ago(finished_hours_ago)
    return Backup.objects.create(
        volume=volume,
        volume_name=volume.name,
        status=status,
        started_at=finished - datetime.timedelta(minutes=1),
        completed_at=finished if status in (BackupStatus.COMPLETED, BackupStatus.FAILED) else None,
        snapshot_id=uuid.uuid4().hex * 2 if status == BackupStatus.COMPLETED else "",
        stats=stats if stats is not None else {},
        error="disk on fire" if status == BackupStatus.FAILED else "",
    )


def make_job(kind: str = JobKind.BACKUP, status: str = JobStatus.QUEUED, *, finished_hours_ago: float | None = None,
             created_hours_ago: float = 0.5, **fields) -> Job:
    job = Job.objects.create(
        kind=kind, status=status,
        finished_at=hours_ago(finished_hours_ago) if finished_hours_ago is not None else None, **fields,
    )
    Job.objects.filter(pk=job.pk).update(created_at=hours_ago(created_hours_ago))
    job.refresh_from_db()
    return job


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Parse an exposition into {(sample name, frozenset(label items)): value}."""
    parsed = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return parsed


def value(parsed: dict, name: str, **labels: str) -> float:
    return parsed[(name, frozenset(labels.items()))]


def volume_series(parsed: dict, name: str) -> dict[str, float]:
    """{volume name: value} of a per-volume metric."""
    return {dict(labels)["volume"]: sample for (sample_name, labels), sample in parsed.items() if sample_name == name}
