"""Rebuild the catalog (volumes and backups) from the backup repository alone.

`manage.py rebuild_catalog` calls `rebuild_catalog(repository)` after the database was lost
(docs/runbook-database-lost.md). Contracts:

* **Read-only outside the database.** Every snapshot manifest is read once; the repository
  and the volumes' data are never written. A manifest that cannot be read (damaged, sealed
  with another key, a catalog record of a later version) is reported in `problems` and the
  rest goes on; storage that cannot be reached is an error (nothing is written then).
* **Idempotent.** A volume whose id is in the catalog is kept as it is (only a
  `data_missing` volume whose folder is back becomes `available`); a backup whose snapshot
  id or id is in the catalog is kept. A second run creates and changes nothing.
* **Volumes**: one per volume id found in platform snapshots (source `volume:<id>`), with
  the id, name, labels, quota, pool, node, RPO override and policy of the newest snapshot
  that carries a catalog record (`backups/catalog_records.py`). Snapshots written before
  records existed give the id, the name (`volume-name:` tag, else `recovered-<id>`), and a
  quota just large enough for the newest snapshot's data; no labels and no policy (the
  volume follows the default policy). `available` when the pool's folder for the id is
  there, else `data_missing`.
* **Names**: two volume ids can claim one name (a deleted volume and the new volume that
  took its name). The volume backed up most recently gets it; the other is not recreated,
  and its backups are restored under its old id and name, as the backups of a deleted
  volume are kept (restorable into a new volume). A name already held by a volume of the
  catalog stays with that volume.
* **Policies** are matched by name. A name with no policy becomes a *placeholder*:
  disabled (no backups, no retention, no verify run under settings nobody chose) with the
  default settings and a description saying so, until an operator sets it up and enables
  it. Leaving the volumes without a policy instead would put them under the default
  policy's retention, which may forget snapshots their own policy keeps.
* **Backups**: one `completed` backup per snapshot, with the id it had (a fixed UUID
  derived from the snapshot id for snapshots without a record), the volume's name at the
  time, tags, stats, trigger (`manual` when not recorded) and times (completed when the
  manifest was written, started `duration_seconds` earlier). Jobs are not recreated:
  `job` is empty.
* One transaction: a run that fails writes nothing; `dry_run` rolls back what it did and
  reports it the same.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import transaction

from backups import volume_access
from backups.catalog_records import CatalogRecord, UnsupportedRecord, read_record
from backups.engine.errors import DataIntegrityError, FormatError, ObjectCorrupt, SnapshotNotFound
from backups.models import Backup, BackupStatus, BackupTrigger, Policy
from backups.runners.results import backup_stats
from volumes.models import VolumeStatus

PLACEHOLDER_DESCRIPTION = ("Placeholder made by manage.py rebuild_catalog: the backups name this policy, but "
                           "its settings were in the lost database. Set schedule, retention and RPO, then "
                           "enable it.")
#: Backups of snapshots without a catalog record get uuid5(this, snapshot id): the same id in
#: every rebuild, so a second run recognises them.
BACKUP_ID_NAMESPACE = uuid.UUID("5d1a4f0e-8a4b-4d7e-9a51-3c2f0b7e6a10")
FALLBACK_NAME_PREFIX = "recovered-"
#: Manifests are read in parallel: on S3 each one is a round trip.
MANIFEST_READERS = 8
UNREADABLE = (FormatError, DataIntegrityError, ObjectCorrupt, UnsupportedRecord)


@dataclass
class VolumeOutcome:
    """What the rebuild did for one volume id."""

    volume_id: uuid.UUID
    name: str
    result: str  # created | kept | not_created
    status: str = ""  # the volume's status afterwards ("" when not created)
    backups_created: int = 0
    backups_kept: int = 0
    reason: str = ""


@dataclass
class RebuildReport:
    manifests: int = 0
    other_snapshots: int = 0  # not platform backups (the CLI's, whose source is a path)
    volumes: list[VolumeOutcome] = field(default_factory=list)
    data_found: list[str] = field(default_factory=list)  # data_missing → available in this run
    policies_created: list[str] = field(default_factory=list)
    unknown_folders: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        def volumes(result: str) -> int:
            return sum(1 for outcome in self.volumes if outcome.result == result)

        return {
            "manifests": self.manifests,
            "volumes_created": volumes("created"),
            "volumes_kept": volumes("kept"),
            "volumes_not_created": volumes("not_created"),
            "volumes_data_missing": sum(1 for outcome in self.volumes if outcome.status == VolumeStatus.DATA_MISSING),
            "volumes_data_found": len(self.data_found),
            "backups_created": sum(outcome.backups_created for outcome in self.volumes),
            "backups_kept": sum(outcome.backups_kept for outcome in self.volumes),
            "policies_created": len(self.policies_created),
            "other_snapshots": self.other_snapshots,
            "unknown_folders": len(self.unknown_folders),
            "problems": len(self.problems),
        }


def rebuild_catalog(repository, *, dry_run: bool = False, actor: str = "manage.py rebuild_catalog") -> RebuildReport:
    """Recreate the volume and backup rows the repository knows of (see the module docstring)."""
    report = RebuildReport()
    records = read_records(repository, report)
    # The volume backed up most recently first: it keeps a name that two volume ids claim.
    order = sorted(records, key=lambda volume_id: (records[volume_id][-1].time, str(volume_id)), reverse=True)
    with transaction.atomic():
        for volume_id in order:
            outcome = _restore_volume(volume_id, records[volume_id], report, actor)
            _restore_backups(outcome, records[volume_id])
            report.volumes.append(outcome)
        report.unknown_folders = [str(path) for path in volume_access.folders_without_volume()]
        if dry_run:
            transaction.set_rollback(True)
    report.volumes.sort(key=lambda outcome: outcome.name)
    return report


def read_records(repository, report: RebuildReport) -> dict[uuid.UUID, list[CatalogRecord]]:
    """The catalog records of every platform snapshot, by volume id, oldest first."""
    def read(snapshot_id: str):
        try:
            return read_record(repository.load_snapshot(snapshot_id))
        except SnapshotNotFound:
            return None  # deleted since the listing (a prune elsewhere): nothing to rebuild
        except UNREADABLE as error:
            return error

    by_volume: dict[uuid.UUID, list[CatalogRecord]] = defaultdict(list)
    snapshot_ids = repository.list_snapshot_ids()
    with ThreadPoolExecutor(max_workers=MANIFEST_READERS, thread_name_prefix="rebuild-read") as readers:
        for snapshot_id, outcome in zip(snapshot_ids, readers.map(read, snapshot_ids)):
            if isinstance(outcome, Exception):
                message = getattr(outcome, "message", None) or str(outcome)
                report.problems.append(f"snapshot {snapshot_id}: {message}")
                continue
            report.manifests += 1
            if outcome is None:
                report.other_snapshots += 1
                continue
            by_volume[outcome.volume_id].append(outcome)
    for volume_records in by_volume.values():
        volume_records.sort(key=lambda record: (record.time, record.snapshot_id))
    return dict(by_volume)


def _restore_volume(volume_id: uuid.UUID, records: list[CatalogRecord], report: RebuildReport,
                    actor: str) -> VolumeOutcome:
    existing = volume_access.get_volume(volume_id)
    if existing is not None:
        if volume_access.recheck_missing_data(existing):
            report.data_found.append(existing.name)
        return VolumeOutcome(volume_id, existing.name, "kept", status=existing.status)
    name = next((record.volume_name for record in reversed(records) if record.volume_name), None) \
        or f"{FALLBACK_NAME_PREFIX}{volume_id.hex}"
    described = next((record for record in reversed(records) if record.complete), None)
    newest = records[-1]
    fields = {"labels": {}, "size_gb": None, "policy": None, "pool": "default", "node": "",
              "rpo_minutes_override": None, "created_at": records[0].time}
    if described is not None:
        fields.update(labels=described.labels, size_gb=described.size_gb, pool=described.pool,
                      node=described.node, rpo_minutes_override=described.rpo_minutes_override,
                      policy=_policy_named(described.policy_name, report),
                      created_at=described.volume_created_at or records[0].time)
    fields["size_gb"] = fields["size_gb"] or smallest_quota_for(newest.stats)
    recorded_path = newest.paths[0] if newest.paths else ""
    try:
        volume = volume_access.recreate_volume(volume_id=volume_id, name=name, recorded_path=recorded_path,
                                               actor=actor, **fields)
    except volume_access.VolumeExists:
        return VolumeOutcome(volume_id, name, "not_created",
                             reason=f"another volume is named {name}; its backups are kept under id {volume_id}")
    return VolumeOutcome(volume_id, volume.name, "created", status=volume.status)


def smallest_quota_for(stats: dict) -> int:
    """The smallest quota in GiB (at least 1) that holds what a snapshot backed up."""
    total = stats.get("bytes_total")
    if not isinstance(total, int) or isinstance(total, bool):
        total = 0
    return max(1, math.ceil(total / 1024**3))


def _policy_named(name: str | None, report: RebuildReport) -> Policy | None:
    if name is None:
        return None
    policy = Policy.objects.filter(name=name).first()
    if policy is None:
        # Saving syncs its (disabled) periodic tasks, like any policy saved.
        policy = Policy.objects.create(name=name, enabled=False, description=PLACEHOLDER_DESCRIPTION)
        report.policies_created.append(name)
    return policy


def _restore_backups(outcome: VolumeOutcome, records: list[CatalogRecord]) -> None:
    snapshot_ids = [record.snapshot_id for record in records]
    wanted_ids = {record.snapshot_id: _backup_id(record) for record in records}
    known_snapshots = set(Backup.objects.filter(snapshot_id__in=snapshot_ids).values_list("snapshot_id", flat=True))
    known_ids = set(Backup.objects.filter(pk__in=list(wanted_ids.values())).values_list("pk", flat=True))
    created, created_at, used_ids = [], {}, set()
    for record in records:
        backup_id = wanted_ids[record.snapshot_id]
        if record.snapshot_id in known_snapshots or backup_id in known_ids:
            outcome.backups_kept += 1
            continue
        if backup_id in used_ids:
            # Two snapshots recording one backup id (a job that committed twice): the second
            # gets the derived id, as a snapshot without a record would.
            backup_id = uuid.uuid5(BACKUP_ID_NAMESPACE, record.snapshot_id)
        used_ids.add(backup_id)
        duration = record.stats.get("duration_seconds")
        started = record.time - dt.timedelta(seconds=duration) if isinstance(duration, (int, float)) else record.time
        backup = Backup(id=backup_id, volume_id=outcome.volume_id, volume_name=record.volume_name or outcome.name,
                        status=BackupStatus.COMPLETED, trigger=record.trigger or BackupTrigger.MANUAL,
                        snapshot_id=record.snapshot_id, tags=list(record.tags), stats=backup_stats(record.stats),
                        started_at=started, completed_at=record.time)
        created.append(backup)
        created_at[backup_id] = record.backup_created_at or started
    if not created:
        return
    Backup.objects.bulk_create(created)
    # `created_at` is auto_now_add, which inserting overrides: the recorded times go in after.
    for backup in created:
        backup.created_at = created_at[backup.pk]
    Backup.objects.bulk_update(created, ["created_at"])
    outcome.backups_created = len(created)


def _backup_id(record: CatalogRecord) -> uuid.UUID:
    return record.backup_id or uuid.uuid5(BACKUP_ID_NAMESPACE, record.snapshot_id)
