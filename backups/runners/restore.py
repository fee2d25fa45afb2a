"""Restore runner: a snapshot back into a volume (its own, in place, or a new one).

The snapshot is restored into a staging folder next to the volume's folder (same file
system), then swapped in with two renames, so a restore that fails or is cancelled leaves
the old data untouched. A crash between the two renames is repaired by the next attempt:
`.replaced-<job>` without a volume folder is moved back before starting again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from backups import volume_access
from backups import selectors
from backups.errors import BackupNotRestorable
from backups.models import Backup
from backups.runners.results import to_jsonable


def staging_paths(target: Path, job) -> tuple[Path, Path]:
    """(staging folder the snapshot is restored into, where the old data waits during the swap)."""
    return target.parent / f".restore-{job.pk}", target.parent / f".replaced-{job.pk}"


def repair_interrupted_swap(target: Path, replaced: Path) -> None:
    """Undo or finish a swap that a dead worker left half-done."""
    if replaced.exists() and not target.exists():
        os.rename(replaced, target)
    elif replaced.exists():
        shutil.rmtree(replaced)


def swap_in(staging: Path, target: Path, replaced: Path) -> None:
    if target.exists():
        os.rename(target, replaced)
    os.rename(staging, target)
    shutil.rmtree(replaced, ignore_errors=True)


def restore_path(repository, snapshot_id: str, path: str, staging: Path, context):
    """Restore one snapshot path to the same place under `staging`.

    The engine puts a directory's *contents* into the target and a file *as* target/<name>,
    so a directory is restored into staging/<path> and anything else into its parent."""
    parent, _, name = path.rstrip("/").rpartition("/")
    entry = next((item for item in repository.list_dir(snapshot_id, parent or "/") if item.name == name), None)
    if entry is None:
        from backups.engine.errors import PathNotFound

        raise PathNotFound(f"no such path in the snapshot: {path}")
    relative = path.strip("/") if entry.type == "dir" else parent.strip("/")
    return repository.restore(snapshot_id, str(staging / relative), sub_path=path, progress=context.progress,
                              cancel=context.cancel)


def run(job, context) -> dict:
    from backups.storage import open_repository

    backup = Backup.objects.filter(pk=job.params.get("backup")).first()
    if backup is None or not selectors.is_completed(backup):
        raise BackupNotRestorable("The backup to restore no longer exists or its snapshot was removed.")
    volume = volume_access.get_volume(job.volume_id)
    if volume is None:
        raise volume_access.VolumeNotFound(f"Volume {job.volume_id} no longer exists.")
    # A redelivered restore finds the volume already restoring; a first run marks it.
    volume_access.keep_restoring(volume.pk)

    target = volume_access.data_path(volume)
    staging, replaced = staging_paths(target, job)
    repair_interrupted_swap(target, replaced)
    shutil.rmtree(staging, ignore_errors=True)  # leftovers of an attempt that died
    staging.mkdir(parents=True)
    context.progress(0, int(backup.stats.get("bytes_read", 0) or 0), "restoring")
    repository = open_repository()
    try:
        paths = job.params.get("paths") or []
        if paths:
            outcome = [restore_path(repository, backup.snapshot_id, path, staging, context) for path in paths]
        else:
            outcome = repository.restore(backup.snapshot_id, str(staging), progress=context.progress,
                                         cancel=context.cancel)
        context.confirm_ownership()
        swap_in(staging, target, replaced)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        repository.close()
    volume_access.refresh_usage(volume)
    return {"backup": str(backup.pk), "snapshot_id": backup.snapshot_id, "volume": str(volume.pk),
            "volume_name": volume.name, "restore": to_jsonable(outcome)}
