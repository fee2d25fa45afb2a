"""Prune runner: apply a policy's retention to each of its volumes, then free unreferenced data.

Retention is per source (`volume:<id>`), so one busy volume never pushes another's
snapshots out. Forgotten snapshots get `Backup.forgotten_at`; the rows stay as history.
Backups of deleted volumes are not touched by policy retention (deleting a volume never
deletes its backups silently); an admin deletes them explicitly.
"""

from __future__ import annotations

from django.utils import timezone

from backups.models import Backup
from backups.runners.results import to_jsonable


def run(job, context) -> dict:
    from backups.storage import open_repository
    from volumes.models import Volume

    dry_run = bool(job.params.get("dry_run", False))
    policy = job.policy
    from backups.engine import RetentionPolicy

    retention = RetentionPolicy.from_dict(policy.retention if policy else {})
    volumes = list(Volume.objects.filter(policy=policy)) if policy else []
    now = timezone.now()
    forgotten: dict[str, list[str]] = {}
    repository = open_repository()
    try:
        for volume in volumes:
            context.check_cancel()
            outcome = repository.forget(retention, source=f"volume:{volume.pk}", dry_run=dry_run, now=now)
            removed = list(outcome.remove)
            forgotten[volume.name] = removed
            if removed and not dry_run:
                Backup.objects.filter(snapshot_id__in=removed, forgotten_at__isnull=True).update(forgotten_at=now)
        context.check_cancel()
        pruned = repository.prune(dry_run=dry_run, progress=context.progress)
        # monitoring reads the newest job result holding this key (backup_repository_size_bytes);
        # prune has just listed the repository, and a failed measurement must not fail the prune.
        try:
            size = {"repository_size_bytes": repository.stats().repository_bytes}
        except Exception:  # noqa: BLE001
            size = {}
    finally:
        repository.close()
    return {"dry_run": dry_run, "policy": policy.name if policy else None, "forgotten": forgotten,
            "prune": to_jsonable(pruned), **size}
