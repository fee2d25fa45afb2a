"""Prune runner: apply a policy's retention to each of its volumes, then free unreferenced data.

Retention is per source (`volume:<id>`), so one busy volume never pushes another's
snapshots out. Forgotten snapshots get `Backup.forgotten_at`; the rows stay as history.
Backups of deleted volumes are not touched by policy retention (deleting a volume never
deletes its backups silently); an admin deletes them explicitly.

Whatever the retention rules say, the newest `policy.keep_good` good snapshots of each
volume (verified or restored intact since they were made: `backups.good_backups`) are kept;
the result's `kept_good` names them per volume, in a dry run too, with `only_reason` true
for those no other rule keeps.

Snapshots still under S3 Object Lock are kept too, whatever the rules say (the engine will
not delete them); the result's `locked` names them per volume with their lock's end, and
`prune.locked_packs_kept` / `prune.locked_index_objects_kept` count the data kept for locks.
"""

from __future__ import annotations

from django.utils import timezone

from backups import pack_verification
from backups.good_backups import Judge
from backups.models import Backup
from backups.runners.results import to_jsonable

KEEP_GOOD_REASON = "last good snapshot ({how})"


def run(job, context) -> dict:
    from backups.storage import open_repository
    from volumes.models import Volume

    dry_run = bool(job.params.get("dry_run", False))
    policy = job.policy
    from backups.engine import RetentionPolicy

    retention = RetentionPolicy.from_dict(policy.retention if policy else {})
    keep_good = policy.keep_good if policy else 0
    volumes = list(Volume.objects.filter(policy=policy)) if policy else []
    judge = Judge.load() if keep_good and volumes else None
    now = timezone.now()
    forgotten: dict[str, list[str]] = {}
    kept_good: dict[str, list[dict]] = {}
    locked: dict[str, dict[str, str]] = {}
    repository = open_repository()
    try:
        for volume in volumes:
            context.check_cancel()
            good = judge.last_good(volume.pk, keep_good) if judge else []
            keep = {item.backup.snapshot_id: KEEP_GOOD_REASON.format(how=item.evidence.how) for item in good}
            outcome = repository.forget(retention, source=f"volume:{volume.pk}", dry_run=dry_run, now=now,
                                        keep=keep)
            removed = list(outcome.remove)
            forgotten[volume.name] = removed
            if outcome.locked:
                locked[volume.name] = dict(outcome.locked)
            if keep_good:
                kept_good[volume.name] = [
                    {"snapshot_id": item.backup.snapshot_id, "backup": str(item.backup.pk), "how": item.evidence.how,
                     "job": item.evidence.job_id, "only_reason": outcome.reasons.get(item.backup.snapshot_id) == [
                         keep[item.backup.snapshot_id]]}
                    for item in good if item.backup.snapshot_id in outcome.reasons
                ]
            if removed and not dry_run:
                Backup.objects.filter(snapshot_id__in=removed, forgotten_at__isnull=True).update(forgotten_at=now)
        context.check_cancel()
        pruned = repository.prune(dry_run=dry_run, progress=context.progress)
        if not dry_run:
            # Rows of the packs prune deleted go now, not at the next verify, so
            # `backup_unverified_bytes` does not count data that is gone.
            listed_at = timezone.now()
            pack_verification.forget_absent(repository.list_packs(), listed_at=listed_at)
        # monitoring reads the newest job result holding this key (backup_repository_size_bytes);
        # prune has just listed the repository, and a failed measurement must not fail the prune.
        try:
            size = {"repository_size_bytes": repository.stats().repository_bytes}
        except Exception:  # noqa: BLE001
            size = {}
    finally:
        repository.close()
    return {"dry_run": dry_run, "policy": policy.name if policy else None, "forgotten": forgotten,
            "keep_good": keep_good, "kept_good": kept_good, "locked": locked, "prune": to_jsonable(pruned),
            **size}
