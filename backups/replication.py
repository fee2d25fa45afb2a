"""The catalog side of replication: which backups a replica should hold, and the
`BackupReplica` rows that say which it does. The only writer of `BackupReplica`.

The rule, decided once here and read by the replicate runner, the API and the metrics:
a backup should be on its policy's replication target when it is completed and not
forgotten (`selectors.completed_backups`) and its volume follows a policy naming a target
(the volume's policy, or the default policy for a volume without one). The replica's own
listing is the truth: `record` adds a row for every such backup whose snapshot the replica
holds, and removes the rows of snapshots it no longer holds, so a replica that was lost and
started over is filled again.
"""

from __future__ import annotations

import datetime

from django.db.models import Case, Exists, F, Min, OuterRef, QuerySet, Subquery, When

from backups import selectors
from backups.models import BackupReplica, Policy

DELETE_CHUNK = 500


def backups_to_replicate(policy: Policy) -> QuerySet:
    """The backups of `policy`'s volumes that belong in its replica (see the module contract)."""
    from backups.scheduling.fanout import volumes_of

    return selectors.completed_backups(volume__in=volumes_of(policy).values("pk"))


def record(target: str, candidates: dict, present: set[str], *, now: datetime.datetime) -> dict:
    """Bring the rows of `target` in line with the replica's snapshot ids `present`:
    a row for each backup of `candidates` ({backup id: snapshot id}) held there (an existing
    row keeps its time), none for any backup of the target whose snapshot is not there.
    Returns the counts added and removed."""
    held = [pk for pk, snapshot_id in candidates.items() if snapshot_id in present]
    known = set(BackupReplica.objects.filter(target=target, backup_id__in=held).values_list("backup_id", flat=True))
    new = [BackupReplica(backup_id=pk, target=target, replicated_at=now) for pk in held if pk not in known]
    BackupReplica.objects.bulk_create(new, ignore_conflicts=True, batch_size=DELETE_CHUNK)
    stale = [pk for pk, snapshot_id in BackupReplica.objects.filter(target=target)
             .values_list("pk", "backup__snapshot_id") if snapshot_id not in present]
    for start in range(0, len(stale), DELETE_CHUNK):
        BackupReplica.objects.filter(pk__in=stale[start:start + DELETE_CHUNK]).delete()
    return {"added": len(new), "removed": len(stale)}


def oldest_unreplicated() -> dict[str, datetime.datetime]:
    """{target: completion time of the oldest backup that should be on it and is not}, one
    query; a target with nothing missing is absent. Feeds `backup_replication_lag_seconds`."""
    default_target = Policy.objects.filter(is_default=True).values("replication_target")[:1]
    target = Case(When(volume__policy__isnull=True, then=Subquery(default_target)),
                  default=F("volume__policy__replication_target"))
    on_target = BackupReplica.objects.filter(backup=OuterRef("pk"), target=OuterRef("replica_target"))
    rows = (selectors.completed_backups().annotate(replica_target=target)
            .exclude(replica_target="").exclude(replica_target__isnull=True)
            .filter(~Exists(on_target))
            .order_by().values("replica_target").annotate(oldest=Min("completed_at")))
    return {row["replica_target"]: row["oldest"] for row in rows}


def lag_seconds(oldest: dict[str, datetime.datetime], target: str, now: datetime.datetime) -> float:
    """Seconds since the oldest backup missing from `target` completed; 0 when none is."""
    moment = oldest.get(target)
    return max((now - moment).total_seconds(), 0.0) if moment is not None else 0.0
