"""The catalog's record in each snapshot manifest: what `manage.py rebuild_catalog` needs to
recreate a volume and its backups from the repository alone, the day the database is lost.

The backup runner stores it in the manifest's `metadata` (engine manifest version 2, see
docs/repository-format.md, "Snapshots"), as it was when the backup ran::

    {"catalog": {"version": 1,
                 "volume": {"id": "<uuid>", "name": "db-1", "labels": {"team": "a"},
                            "size_gb": 10, "policy": "nightly" | null, "pool": "default",
                            "node": "", "rpo_minutes_override": 15 | null,
                            "rpo_hours_override": 12 | null, "created_at": "<ISO-8601>"},
                 "backup": {"id": "<uuid>", "job": "<uuid>", "trigger": "schedule",
                            "created_at": "<ISO-8601>"}}}

`policy` is the policy's *name* (ids are not stable across databases); null means the volume
follows the default policy. The RPO override is `rpo_minutes_override`; `rpo_hours_override`
repeats it in whole hours (null when it is not whole hours) for releases that read only that
key, and is what a record written before minutes existed holds. `read_record(snapshot)` reads it back, and also reads manifests
written before it existed (no metadata): the volume id comes from the source
(`volume:<id>`), the name from the `volume-name:<name>` tag when the snapshot has one, and
everything else is left unknown for the rebuild to fill in (`CatalogRecord.complete` is
False). A record of a later version than `RECORD_VERSION` is refused
(`UnsupportedRecord`), never half-read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from backups import volume_access
from backups.models import BackupTrigger
from volumes.models import MAX_SIZE_GB
from storage_platform.rpo import MAX_RPO_HOURS, MAX_RPO_MINUTES, MINUTES_PER_HOUR

RECORD_KEY = "catalog"
RECORD_VERSION = 1
VOLUME_SOURCE_PREFIX = "volume:"
VOLUME_NAME_TAG_PREFIX = "volume-name:"
MAX_NAME_LENGTH = 63


class UnsupportedRecord(Exception):
    """The manifest's catalog record is of a version this release cannot read."""


@dataclass
class CatalogRecord:
    """What one snapshot says about its volume and its backup (None: not recorded)."""

    snapshot_id: str
    time: dt.datetime
    volume_id: uuid.UUID
    tags: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)  # the data folder the snapshot was taken of
    volume_name: str | None = None
    complete: bool = False  # False: a manifest without the record (only source and tags)
    labels: dict = field(default_factory=dict)
    size_gb: int | None = None
    policy_name: str | None = None
    pool: str = "default"
    node: str = ""
    rpo_minutes_override: int | None = None
    volume_created_at: dt.datetime | None = None
    backup_id: uuid.UUID | None = None
    trigger: str | None = None
    backup_created_at: dt.datetime | None = None


def manifest_metadata(volume, backup) -> dict:
    """The `metadata` the backup runner stores in the snapshot of `backup` of `volume`."""
    policy = volume.policy if volume.policy_id is not None else None
    return {RECORD_KEY: {
        "version": RECORD_VERSION,
        "volume": {"id": str(volume.pk), "name": volume.name, "labels": dict(volume.labels or {}),
                   "size_gb": volume.size_gb, "policy": policy.name if policy is not None else None,
                   "pool": volume.pool, "node": volume.node,
                   "rpo_minutes_override": volume.rpo_minutes_override,
                   "rpo_hours_override": _whole_hours(volume.rpo_minutes_override),
                   "created_at": volume.created_at.isoformat() if volume.created_at else None},
        "backup": {"id": str(backup.pk), "job": str(backup.job_id) if backup.job_id else None,
                   "trigger": backup.trigger,
                   "created_at": backup.created_at.isoformat() if backup.created_at else None},
    }}


def _whole_hours(minutes: int | None) -> int | None:
    if minutes is None or minutes % MINUTES_PER_HOUR:
        return None
    return minutes // MINUTES_PER_HOUR


def volume_id_of(source: str) -> uuid.UUID | None:
    """The volume id of a platform snapshot's source (`volume:<uuid>`), else None."""
    if not source.startswith(VOLUME_SOURCE_PREFIX):
        return None
    text = source[len(VOLUME_SOURCE_PREFIX):]
    try:
        volume_id = uuid.UUID(text)
    except ValueError:
        return None
    return volume_id if str(volume_id) == text else None


def read_record(snapshot) -> CatalogRecord | None:
    """The catalog record of an engine `SnapshotInfo`; None when it is not a platform backup
    (a CLI snapshot, whose source is a path). `UnsupportedRecord` for a newer record."""
    volume_id = volume_id_of(snapshot.source)
    if volume_id is None:
        return None
    record = CatalogRecord(snapshot_id=snapshot.id, time=snapshot.time, volume_id=volume_id,
                           tags=list(snapshot.tags), stats=dict(snapshot.stats), paths=list(snapshot.paths),
                           volume_name=_valid_name(_name_tag(snapshot.tags)))
    document = (snapshot.metadata or {}).get(RECORD_KEY)
    if document is None:
        return record
    if not isinstance(document, dict) or document.get("version") != RECORD_VERSION:
        version = document.get("version") if isinstance(document, dict) else None
        raise UnsupportedRecord(f"snapshot {snapshot.id} holds a catalog record of version {version!r}; "
                                f"this release reads version {RECORD_VERSION}")
    volume = document.get("volume") if isinstance(document.get("volume"), dict) else {}
    backup = document.get("backup") if isinstance(document.get("backup"), dict) else {}
    if _uuid(volume.get("id")) not in (None, volume_id):
        raise UnsupportedRecord(f"snapshot {snapshot.id}: its catalog record names volume {volume.get('id')} "
                                f"but its source is {snapshot.source}")
    record.complete = True
    record.volume_name = _valid_name(volume.get("name")) or record.volume_name
    record.labels = _labels(volume.get("labels"))
    record.size_gb = _integer(volume.get("size_gb"), 1, MAX_SIZE_GB)
    record.policy_name = _text(volume.get("policy"))
    record.pool = _text(volume.get("pool")) or "default"
    record.node = _text(volume.get("node")) or ""
    record.rpo_minutes_override = _integer(volume.get("rpo_minutes_override"), 1, MAX_RPO_MINUTES)
    if record.rpo_minutes_override is None:
        hours = _integer(volume.get("rpo_hours_override"), 1, MAX_RPO_HOURS)
        record.rpo_minutes_override = None if hours is None else hours * MINUTES_PER_HOUR
    record.volume_created_at = _time(volume.get("created_at"))
    record.backup_id = _uuid(backup.get("id"))
    record.trigger = backup.get("trigger") if backup.get("trigger") in BackupTrigger.values else None
    record.backup_created_at = _time(backup.get("created_at"))
    return record


# Each reader below turns a value of the wrong type into "not recorded" rather than failing:
# the manifest is authenticated, so a bad value means an older writer, not an attacker, and
# the rest of the record is still worth having.
def _name_tag(tags) -> str | None:
    return next((tag[len(VOLUME_NAME_TAG_PREFIX):] for tag in tags if tag.startswith(VOLUME_NAME_TAG_PREFIX)), None)


def _valid_name(value) -> str | None:
    return value if isinstance(value, str) and volume_access.is_volume_name(value) else None


def _text(value) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH else None


def _integer(value, minimum: int, maximum: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if minimum <= value <= maximum else None


def _labels(value) -> dict:
    if not isinstance(value, dict):
        return {}
    return {key: item for key, item in value.items() if isinstance(key, str) and isinstance(item, str)}


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _time(value) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)
