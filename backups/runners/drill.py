"""Drill runner: prove that a backup restores, without touching any volume.

The backup's snapshot is restored into `<DRILL_SCRATCH_DIR>/<job id>` on this worker's host,
every entry is checked against the snapshot (content hash, size, mode, type, symlink target:
`engine/drill.py`) and the folder is removed again, whatever the outcome.

How a drill ends (`error_code` of a failed job):

* succeeded: `result.drill` is the engine's report (entries and bytes checked, the restore's
  counts and warnings);
* `drill_mismatch`: the snapshot restored, but entries differ from it; the report, with the
  first differences, is in `result.drill`;
* `drill_restore_failed`: the snapshot could not be restored because repository data is
  damaged or missing (a flipped byte in a pack, a missing pack, a tree that does not decode);
  the engine's code and message are in `result.cause`;
* `drill_scratch_unsafe`: `DRILL_SCRATCH_DIR` lies inside a volume pool; nothing was restored;
* `backup_not_restorable`: the backup was pruned or deleted after the drill was queued.

Transient storage errors are retried like any job's; a cancel stops the restore or the check
at the next chunk. Problems of the worker's own disk (`target_error`, e.g. no space for the
scratch copy) keep the engine's code: they say nothing about the backup.

Leftovers: a worker killed mid-drill cannot remove its folder. Every drill first removes the
folders of drill jobs that are no longer active (its own included, left by an earlier attempt
of the same job); folders that are not named after a drill job are never touched.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from django.conf import settings

from backups import selectors, volume_access
from backups.errors import BackupNotRestorable
from backups.models import ACTIVE_JOB_STATUSES, Backup, Job, JobKind
from backups.runners import RunnerFailure
from backups.runners.results import to_jsonable

logger = logging.getLogger(__name__)


def scratch_base() -> Path:
    """`DRILL_SCRATCH_DIR`, resolved; `drill_scratch_unsafe` when it is in a volume pool (or is
    one), where a restore could land in, or a leftover sweep could remove, a volume's data."""
    base = Path(settings.DRILL_SCRATCH_DIR).resolve()
    for root in volume_access.pool_roots():
        if base == root or root in base.parents:
            raise RunnerFailure(f"DRILL_SCRATCH_DIR {base} is inside the volume pool {root}; a drill never "
                                "restores there. Point it elsewhere (default: $DATA_DIR/drills).",
                                "drill_scratch_unsafe", {"scratch_dir": str(base), "pool_root": str(root)})
    return base


def remove_leftovers(base: Path, job) -> list[str]:
    """Remove the scratch folders of drill jobs that are not running (their worker died before
    it could), and this job's own from an earlier attempt. Returns the names removed."""
    from backups.engine.drill import remove_tree

    if not base.is_dir():
        return []
    named = {}
    for child in base.iterdir():
        try:
            named[uuid.UUID(child.name)] = child
        except ValueError:
            continue  # not a drill's folder
    if not named:
        return []
    finished = set(Job.objects.filter(pk__in=list(named), kind=JobKind.DRILL)
                   .exclude(status__in=ACTIVE_JOB_STATUSES).values_list("pk", flat=True))
    finished.add(job.pk)
    removed = []
    for job_id, child in named.items():
        if job_id in finished and remove_tree(child):
            removed.append(child.name)
    if removed:
        logger.warning("drill job %s removed scratch folders left by dead drills: %s", job.pk, ", ".join(removed))
    return removed


def _damage_errors() -> tuple:
    """Engine errors that mean the repository cannot give the snapshot back."""
    from backups.engine import errors

    return (errors.DataIntegrityError, errors.FormatError, errors.ObjectNotFound, errors.ObjectCorrupt,
            errors.SnapshotNotFound, errors.UnsafePath)


def run(job, context) -> dict:
    from backups.storage import open_repository

    backup = Backup.objects.filter(pk=job.params.get("backup")).first()
    if backup is None or not selectors.is_completed(backup):
        raise BackupNotRestorable("The backup to drill no longer exists or its snapshot was removed.")
    base = scratch_base()
    remove_leftovers(base, job)
    described = {"backup": str(backup.pk), "snapshot_id": backup.snapshot_id,
                 "volume": str(backup.volume_id), "volume_name": backup.volume_name}
    context.progress(0, 2 * int(backup.stats.get("bytes_read", 0) or 0), "drilling")
    repository = open_repository()
    try:
        report = repository.drill(backup.snapshot_id, base / str(job.pk), progress=context.progress,
                                  cancel=context.cancel)
    except _damage_errors() as error:
        raise RunnerFailure(f"The snapshot could not be restored: {error.message}", "drill_restore_failed",
                            {**described, "ok": False, "cause": {"code": error.code, "message": error.message}}
                            ) from error
    finally:
        repository.close()
    result = {**described, "ok": report.ok, "drill": to_jsonable(report)}
    if not report.scratch_removed:
        logger.error("drill job %s could not remove its scratch folder %s; the next drill tries again",
                     job.pk, base / str(job.pk))
    if not report.ok:
        raise RunnerFailure(f"The restored files differ from the snapshot in {report.difference_count} "
                            "place(s); see the job result.", "drill_mismatch", result)
    return result
