"""Replicate runner: copy a policy's backups into the replica of its replication target.

    primary (open_repository) ──copy_to──► replica (replication_targets.open_replica)

1. The replica is opened, or created related to the primary on the first run, so a copied
   snapshot keeps its id (the catalog's `snapshot_id` is valid in the replica).
2. The replica follows the primary's retention: a snapshot the replica holds that the
   primary no longer holds *and* that no completed, non-forgotten backup of the catalog
   names is removed from the replica, then the replica is pruned. Both witnesses must
   agree, so neither a primary that lost objects nor a catalog that lost rows can make the
   replica drop the copy that would have saved them. A copy still under its Object Lock
   stays, and is named in the result (`forgotten.locked`: id -> locked until); a later run
   removes it once the lock has passed. The replica's prune keeps locked objects itself.
3. Every backup that belongs in the replica (`replication.backups_to_replicate`) and whose
   snapshot the replica lacks is copied (`Repository.copy_to`: shared locks on both, with
   progress and cancel), locked with the target's `lock_mode` / `lock_days` when it has them
   (an immutable replica: `ReplicationTarget.retention()`). A snapshot the catalog counts but
   the primary no longer has cannot be copied; it is named in the result as `unavailable`
   and keeps the lag growing.
4. The catalog's `BackupReplica` rows are set from the replica's listing
   (`replication.record`).

Idempotent: what the replica already holds is skipped (a second run copies nothing), and a
redelivered job starts over from the listing, which already counts what an earlier attempt
committed (the engine copies a manifest last, so a half copy is never listed).
"""

from __future__ import annotations

from django.utils import timezone

from backups import replication
from backups.engine.errors import ObjectLocked, SnapshotNotFound
from backups.errors import NoReplicationTarget
from backups.models import Backup, BackupStatus
from backups.replication_targets import get_target, open_replica
from backups.runners.results import to_jsonable


def run(job, context) -> dict:
    from backups.storage import open_repository

    policy = job.policy
    if policy is None or not policy.replication_target:
        raise NoReplicationTarget("The job's policy names no replication target.")
    target = get_target(policy.replication_target)
    candidates = dict(replication.backups_to_replicate(policy).values_list("pk", "snapshot_id"))
    primary = open_repository()
    try:
        context.progress(0, 0, f"opening the replica on {target.name}")
        replica = open_replica(target, primary)
        try:
            in_primary = set(primary.list_snapshot_ids())
            forgotten = _follow_retention(replica, in_primary, context)
            present = set(replica.list_snapshot_ids())
            wanted = sorted(set(candidates.values()))
            unavailable = [snapshot_id for snapshot_id in wanted if snapshot_id not in in_primary]
            missing = [snapshot_id for snapshot_id in wanted if snapshot_id in in_primary and snapshot_id not in present]
            context.check_cancel()
            copy = {"copied": {}, "skipped": [], "blobs_copied": 0, "bytes_copied": 0}
            if missing:
                # Dated when the copy starts, so every copy of this run is locked alike.
                retention = target.retention()
                try:
                    copied = primary.copy_to(replica, missing, progress=context.progress, cancel=context.cancel,
                                             retention=retention)
                except SnapshotNotFound:
                    # A prune of the primary removed one between the listing and the copy
                    # (the copy's lock waits for a running prune, not for one that just ended).
                    in_primary = set(primary.list_snapshot_ids())
                    unavailable = [snapshot_id for snapshot_id in wanted if snapshot_id not in in_primary]
                    missing = [snapshot_id for snapshot_id in missing if snapshot_id in in_primary]
                    copied = primary.copy_to(replica, missing, progress=context.progress, cancel=context.cancel,
                                             retention=retention)
                present.update(copied.copied.keys(), copied.skipped)
                copy = to_jsonable(copied)
        finally:
            replica.close()
    finally:
        primary.close()
    rows = replication.record(target.name, candidates, present, now=timezone.now())
    return {"policy": policy.name, "target": target.name, "location": target.location,
            "copy": copy, "forgotten": forgotten, "unavailable": unavailable,
            "replicas": rows}


def _follow_retention(replica, in_primary: set[str], context) -> dict:
    """Remove from the replica what the primary's retention or a delete removed (see the
    module contract, step 2); prune the replica when anything went. A locked copy is kept
    and named in `locked` with its date."""
    gone = set(replica.list_snapshot_ids()) - in_primary
    if gone:
        counted = set(Backup.objects.filter(status=BackupStatus.COMPLETED, forgotten_at__isnull=True,
                                            snapshot_id__in=gone).values_list("snapshot_id", flat=True))
        gone -= counted
    removed, locked = [], {}
    for snapshot_id in sorted(gone):
        context.check_cancel()
        try:
            replica.delete_snapshot(snapshot_id)
        except ObjectLocked as error:
            locked[snapshot_id] = error.detail.get("locked_until")
        else:
            removed.append(snapshot_id)
    pruned = replica.prune(progress=context.progress) if removed else None
    return {"snapshots": removed, "locked": locked, "prune": to_jsonable(pruned) if pruned is not None else None}
