"""Service functions: the one way to start backups, restores, verifies, drills, prunes and
replication.

Views, admin actions, the scheduler (beat fan-out, reconciler) and management commands all
call these; none of them creates Job rows or sends Celery messages itself. Every function
writes its rows in one transaction and sends the Celery message only after it commits
(`jobs.enqueue`), so a worker never sees a job id that is not in the database.

Exclusion: at most one backup or restore per volume is queued or running. The database
enforces it (partial unique constraint `one_active_data_job_per_volume`), so it holds across
any number of API processes and workers; callers get `BackupInProgress` (409) naming the
active job either way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

from django.db import IntegrityError, transaction
from django.utils import timezone

from backups import jobs, routing, selectors, volume_access
from backups.errors import (
    BackupActive,
    BackupInProgress,
    BackupLocked,
    BackupNotRestorable,
    DrillInProgress,
    IdempotencyKeyReused,
    InvalidRestoreTarget,
    NoReplicationTarget,
)
from backups.models import ACTIVE_JOB_STATUSES, Backup, BackupStatus, BackupTrigger, Job, JobKind, Policy
from backups.volume_access import VolumeNotAvailable
from storage_platform.errors import BadRequest

logger = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255


# --- lookups -------------------------------------------------------------------------------
find_volume = volume_access.find_volume  # the volumes app's lookup (id or name; 404 otherwise)
available_volumes = volume_access.available_volumes  # every available volume, by name


def active_data_job(volume) -> Job | None:
    """The queued or running backup/restore of `volume`, if any."""
    return selectors.active_data_job(volume.pk)


def _in_progress(volume, job: Job | None) -> BackupInProgress:
    if job is None:  # the constraint tripped but the winner already finished: rare, still a conflict
        return BackupInProgress(f"A backup or restore of volume {volume.name} was just started.",
                                detail={"volume": str(volume.pk)})
    backup_id = Backup.objects.filter(job=job).values_list("pk", flat=True).first()
    what = f"Backup {backup_id}" if backup_id else f"A {job.kind}"
    return BackupInProgress(
        f"{what} of volume {volume.name} is already {job.status} (job {job.pk}).",
        detail={"volume": str(volume.pk), "volume_name": volume.name, "kind": job.kind, "status": job.status,
                "job": str(job.pk), "backup": str(backup_id) if backup_id else None},
    )


def _clean_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is None:
        return None
    key = idempotency_key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable characters.",
                         code="invalid_idempotency_key")
    return key


def _job_for_key(key: str | None, *, kind: str, volume_id=None, backup_id=None) -> Job | None:
    """The job an earlier request with this Idempotency-Key created, if it was the same request."""
    if key is None:
        return None
    job = Job.objects.filter(idempotency_key=key).first()
    if job is None:
        return None
    same = job.kind == kind and (volume_id is None or job.volume_id == volume_id)
    if backup_id is not None:
        same = same and job.params.get("backup") == str(backup_id)
    if not same:
        raise IdempotencyKeyReused(detail={"job": str(job.pk), "kind": job.kind})
    return job


def _save_data_job(job: Job, volume) -> Job:
    """Insert a backup/restore job; the unique constraints turn races into clean errors."""
    try:
        with transaction.atomic():
            job.save(force_insert=True)
    except IntegrityError:
        if job.idempotency_key and Job.objects.filter(idempotency_key=job.idempotency_key).exists():
            raise _RetryWithKey() from None
        raise _in_progress(volume, active_data_job(volume)) from None
    return job


class _RetryWithKey(Exception):
    """A concurrent request with the same Idempotency-Key won the insert."""


# --- backups -------------------------------------------------------------------------------
def trigger_backup(volume, *, trigger: str, actor: str = "", idempotency_key: str | None = None,
                   policy: Policy | None = None) -> Backup:
    """Queue a backup of `volume` and return its Backup (status `queued`, `job` set).

    The Celery message is sent when the transaction commits. With `idempotency_key`, a
    repeated call returns the Backup the first call created (whatever its status now).
    Raises `BackupInProgress` (409, `detail` names the active job and backup) when a backup
    or restore of the volume is queued or running, `VolumeNotAvailable` (409) when the volume
    is being created, deleted or is in error, `IdempotencyKeyReused` (409) when the key was
    used for another request."""
    key = _clean_key(idempotency_key)
    if trigger not in BackupTrigger.values:
        raise BadRequest(f"Unknown trigger {trigger!r}.")
    existing = _job_for_key(key, kind=JobKind.BACKUP, volume_id=volume.pk)
    if existing is not None:
        return Backup.objects.get(job=existing)
    try:
        with transaction.atomic():
            active = active_data_job(volume)
            if active is not None:
                raise _in_progress(volume, active)
            volume.refresh_from_db(fields=["status", "node", "name"])
            if not volume_access.is_available(volume):
                raise VolumeNotAvailable(f"Volume {volume.name} is {volume.status}; it cannot be backed up now.",
                                         detail={"volume": str(volume.pk), "status": volume.status})
            job = _save_data_job(Job(
                kind=JobKind.BACKUP, volume=volume, policy=policy or volume.policy,
                queue=routing.queue_for(JobKind.BACKUP, volume), created_by=actor[:128], idempotency_key=key,
                params={"trigger": trigger},
            ), volume)
            backup = Backup.objects.create(volume=volume, volume_name=volume.name, trigger=trigger, job=job,
                                           status=BackupStatus.QUEUED)
            jobs.enqueue(job)
    except _RetryWithKey:
        return Backup.objects.get(job=_job_for_key(key, kind=JobKind.BACKUP, volume_id=volume.pk))
    logger.info("backup %s of volume %s queued (job %s, %s by %s)", backup.pk, volume.name, job.pk, trigger,
                actor or "system")
    return backup


def trigger_backup_all(*, trigger: str, actor: str = "", volumes=None) -> tuple[list[Backup], list[dict]]:
    """Queue a backup of every available volume (or of `volumes`).

    Returns (queued backups, skipped) where each skipped entry is
    `{"volume", "volume_name", "code", "reason", "detail"}`: volumes with a backup or restore
    already active, or not available. Never raises for one volume's conflict."""
    if volumes is None:
        volumes = volume_access.available_volumes()
    queued, skipped = [], []
    for volume in volumes:
        try:
            queued.append(trigger_backup(volume, trigger=trigger, actor=actor))
        except (BackupInProgress, VolumeNotAvailable) as error:
            skipped.append({"volume": str(volume.pk), "volume_name": volume.name, "code": error.code,
                            "reason": error.message, "detail": error.detail})
    return queued, skipped


def delete_backup(backup: Backup, *, actor: str = "") -> None:
    """Forget the backup's snapshot in the repository (its data is freed by the next prune)
    and remove the catalog row. Raises `BackupActive` (409) while its job is active, and
    `BackupLocked` (409, nothing changed) while its snapshot is locked (S3 Object Lock): the
    catalog's `locked_until` answers first, the repository's own lock otherwise."""
    if backup.status in (BackupStatus.QUEUED, BackupStatus.RUNNING):
        raise BackupActive(detail={"backup": str(backup.pk), "job": str(backup.job_id) if backup.job_id else None})
    if backup.locked_until is not None and backup.locked_until > timezone.now() and backup.forgotten_at is None:
        raise _backup_locked(backup, backup.locked_until.isoformat())
    if backup.snapshot_id and backup.forgotten_at is None:
        from backups.engine.errors import ObjectLocked, SnapshotNotFound
        from backups.storage import open_repository

        repository = open_repository()
        try:
            repository.delete_snapshot(backup.snapshot_id)
        except SnapshotNotFound:
            pass  # already gone (retention, or a retried delete): deleting is idempotent
        except ObjectLocked as error:
            raise _backup_locked(backup, error.detail.get("locked_until")) from None
        finally:
            repository.close()
    logger.info("backup %s of volume %s deleted by %s", backup.pk, backup.volume_name, actor or "system")
    backup.delete()


def _backup_locked(backup: Backup, until: str | None) -> BackupLocked:
    return BackupLocked(f"Backup {backup.pk} is locked until {until} (S3 Object Lock); it cannot be "
                        "deleted before then.", detail={"backup": str(backup.pk), "locked_until": until})


# --- restores ------------------------------------------------------------------------------
def _restorable(backup: Backup) -> None:
    if not selectors.is_completed(backup):
        raise BackupNotRestorable(
            f"Backup {backup.pk} is {backup.status}" + (" and its snapshot was removed" if backup.forgotten_at else "")
            + "; only a completed backup can be restored.",
            detail={"backup": str(backup.pk), "status": backup.status},
        )


def _size_for_restore(backup: Backup, source_volume) -> int:
    if source_volume is not None:
        return source_volume.size_gb
    # `bytes_total` is the snapshot's whole content; `bytes_read` only what this backup read
    # (after an incremental one, the changed files), so it alone would size the new volume
    # too small for the data it must receive.
    stats = backup.stats or {}
    content_bytes = max(int(stats.get("bytes_total") or 0), int(stats.get("bytes_read") or 0))
    return max(1, math.ceil(content_bytes * 1.1 / 1024**3))


MAX_RESTORE_PATHS = 100


def clean_restore_paths(paths) -> list[str]:
    """Snapshot paths to restore (`/dir`, `dir/file`...) as absolute, normalised paths.

    Raises `BadRequest` (400, code `invalid_path`) for anything that is not a list of at most
    `MAX_RESTORE_PATHS` non-empty strings without `..` or NUL."""
    if paths is None:
        return []
    if isinstance(paths, str) or not isinstance(paths, (list, tuple)) or len(paths) > MAX_RESTORE_PATHS:
        raise BadRequest(f"paths must be a list of at most {MAX_RESTORE_PATHS} paths.", code="invalid_path")
    cleaned = []
    for raw in paths:
        parts = [part for part in str(raw).split("/") if part not in ("", ".")] if isinstance(raw, str) else None
        if not parts or ".." in parts or "\x00" in raw or len(raw) > 4096:
            raise BadRequest(f"{str(raw)[:80]!r} is not a path inside the snapshot.", code="invalid_path",
                             detail={"paths": [str(raw)[:80]]})
        path = "/" + "/".join(parts)
        if path not in cleaned:
            cleaned.append(path)
    return cleaned


def start_restore(backup: Backup, *, target_volume=None, new_volume_name: str | None = None, actor: str = "",
                  idempotency_key: str | None = None, size_gb: int | None = None, paths=None) -> Job:
    """Queue a restore of `backup` and return its Job (`queued`).

    Target: `new_volume_name` creates a new volume (through the volumes services; 409 if the
    name is taken) and restores into it; otherwise `target_volume`, or the backup's own volume
    when it still exists, is restored in place (staged, then swapped). The target volume is
    `restoring` until the job ends. Raises `BackupNotRestorable` (409) for a backup that is
    not completed or whose snapshot was removed, `BackupInProgress` (409) when the target has
    an active backup or restore, `InvalidRestoreTarget` (400) for contradictory targets.

    `paths` restores only those paths of the snapshot (each at its own place in the new
    volume); only into a new volume, since an in-place restore replaces the whole volume."""

    key = _clean_key(idempotency_key)
    paths = clean_restore_paths(paths)
    if paths and not new_volume_name:
        raise InvalidRestoreTarget("paths can only be restored into a new volume (new_volume_name).",
                                   detail={"paths": paths})
    existing = _job_for_key(key, kind=JobKind.RESTORE, backup_id=backup.pk)
    if existing is not None:
        return existing
    _restorable(backup)
    if target_volume is not None and new_volume_name:
        raise InvalidRestoreTarget("Give either a target volume or new_volume_name, not both.")
    source_volume = volume_access.get_volume(backup.volume_id) if backup.volume_id else None
    new_volume = False
    if new_volume_name:
        target_volume = volume_access.create_volume_for_restore(
            name=new_volume_name, size_gb=size_gb or _size_for_restore(backup, source_volume), actor=actor,
            source_volume=source_volume,
        )
        new_volume = True
    elif target_volume is None:
        if source_volume is None:
            raise InvalidRestoreTarget(
                f"Volume {backup.volume_name} no longer exists; restore into a new volume with new_volume_name.",
                detail={"backup": str(backup.pk)},
            )
        target_volume = source_volume
    try:
        with transaction.atomic():
            active = active_data_job(target_volume)
            if active is not None:
                raise _in_progress(target_volume, active)
            job = _save_data_job(Job(
                kind=JobKind.RESTORE, volume=target_volume, queue=routing.queue_for(JobKind.RESTORE, target_volume),
                created_by=actor[:128], idempotency_key=key,
                params={"backup": str(backup.pk), "snapshot_id": backup.snapshot_id,
                        "source_volume": str(backup.volume_id), "new_volume": new_volume,
                        "in_place": not new_volume, **({"paths": paths} if paths else {})},
            ), target_volume)
            volume_access.start_restoring(target_volume)
            jobs.enqueue(job)
    except _RetryWithKey:
        return _job_for_key(key, kind=JobKind.RESTORE, backup_id=backup.pk)
    logger.info("restore of backup %s into volume %s queued (job %s, by %s)", backup.pk, target_volume.name,
                job.pk, actor or "system")
    return job


# --- reading a snapshot --------------------------------------------------------------------
def ensure_readable(backup: Backup) -> None:
    """`BackupNotRestorable` (409) unless the backup has a snapshot to read."""
    if not selectors.is_completed(backup):
        raise BackupNotRestorable(f"Backup {backup.pk} has no snapshot to read ({backup.status}).",
                                  detail={"backup": str(backup.pk), "status": backup.status})


def list_backup_dir(backup: Backup, path: str) -> list:
    """The entries of directory `path` in the backup's snapshot (engine `TreeEntry` values).
    `BackupNotRestorable` (409) when the backup has no snapshot to read; the engine's
    not-found errors for a missing path."""
    from backups.storage import open_repository

    ensure_readable(backup)
    repository = open_repository()
    try:
        return list(repository.list_dir(backup.snapshot_id, path))
    finally:
        repository.close()


def open_backup_file(backup: Backup, path: str) -> Iterator[bytes]:
    """The content of file `path` in the backup's snapshot, as a stream of chunks.

    The first chunk is read before this returns, so a missing path or damaged data raises
    here (a clean error response) instead of breaking a stream already started. The
    repository stays open until the stream is exhausted or closed."""
    from backups.storage import open_repository

    ensure_readable(backup)
    repository = open_repository()
    try:
        chunks = iter(repository.open_file(backup.snapshot_id, path))
        first = next(chunks, b"")
    except BaseException:
        repository.close()
        raise

    def stream() -> Iterator[bytes]:
        try:
            yield first
            yield from chunks
        finally:
            repository.close()

    return stream()


# --- maintenance ---------------------------------------------------------------------------
def start_verify(*, read_data_percent: float, actor: str = "", policy: Policy | None = None,
                 backup: Backup | None = None) -> Job:
    """Queue a repository verification reading `read_data_percent` (0-100) of the data.
    With `backup`, the job is recorded against that backup (the check itself covers the
    repository the backup lives in)."""
    try:
        percent = float(read_data_percent)
    except (TypeError, ValueError):
        raise BadRequest("read_data_percent must be a number from 0 to 100.") from None
    if not 0 <= percent <= 100 or math.isnan(percent):
        raise BadRequest("read_data_percent must be a number from 0 to 100.", detail={"read_data_percent": percent})
    params = {"read_data_percent": percent}
    if backup is not None:
        _restorable(backup)
        params.update(backup=str(backup.pk), snapshot_id=backup.snapshot_id)
    with transaction.atomic():
        job = Job.objects.create(kind=JobKind.VERIFY, queue=routing.queue_for(JobKind.VERIFY), policy=policy,
                                 created_by=actor[:128], params=params)
        jobs.enqueue(job)
    return job


def start_drill(backup: Backup, *, actor: str = "", policy: Policy | None = None,
                idempotency_key: str | None = None) -> Job:
    """Queue a restore drill of `backup` and return its Job (`queued`, on the maintenance queue).

    The drill restores the backup's snapshot into a scratch directory on a worker (never a
    volume), checks every entry against the snapshot and removes the directory
    (`runners/drill.py`). The job records the backup's volume (for its per-volume metrics;
    a drill never touches the volume) and becomes the backup's `last_drill`. Raises
    `BackupNotRestorable` (409) for a backup that is not completed or whose snapshot was
    removed, `DrillInProgress` (409) while a drill of the same backup is queued or running,
    `IdempotencyKeyReused` (409) when the key was used for another request."""
    key = _clean_key(idempotency_key)
    existing = _job_for_key(key, kind=JobKind.DRILL, backup_id=backup.pk)
    if existing is not None:
        return existing
    _restorable(backup)
    try:
        with transaction.atomic():
            active = selectors.active_drill(backup)
            if active is not None:
                raise DrillInProgress(
                    f"A drill of backup {backup.pk} is already {active.status} (job {active.pk}).",
                    detail={"backup": str(backup.pk), "job": str(active.pk), "status": active.status})
            job = Job(kind=JobKind.DRILL, volume_id=backup.volume_id, policy=policy,
                      queue=routing.queue_for(JobKind.DRILL), created_by=actor[:128], idempotency_key=key,
                      params={"backup": str(backup.pk), "snapshot_id": backup.snapshot_id,
                              "volume_name": backup.volume_name})
            try:
                with transaction.atomic():
                    job.save(force_insert=True)
            except IntegrityError:
                raise _RetryWithKey() from None  # the only unique field a new job can clash on
            Backup.objects.filter(pk=backup.pk).update(last_drill=job)
            jobs.enqueue(job)
    except _RetryWithKey:
        return _job_for_key(key, kind=JobKind.DRILL, backup_id=backup.pk)
    logger.info("drill of backup %s (volume %s) queued (job %s, by %s)", backup.pk, backup.volume_name, job.pk,
                actor or "system")
    return job


def start_prune(*, policy: Policy, dry_run: bool = False, actor: str = "") -> Job:
    """Queue retention (`forget` per volume of `policy`) followed by `prune` of unreferenced
    data. With `dry_run`, the job's result lists what would go and nothing is removed."""
    with transaction.atomic():
        job = Job.objects.create(kind=JobKind.PRUNE, queue=routing.queue_for(JobKind.PRUNE), policy=policy,
                                 created_by=actor[:128], params={"dry_run": bool(dry_run)})
        jobs.enqueue(job)
    return job


def start_replicate(*, policy: Policy, actor: str = "") -> Job:
    """Queue a copy of `policy`'s backups into the replica of its replication target
    (`runners/replicate.py`). `NoReplicationTarget` (409) when the policy names none,
    `UnknownReplicationTarget` (400) when the name is not configured. While a replicate job
    of the policy is queued or running, that job is returned instead of a second one (it
    copies everything missing when it runs)."""
    from backups.replication_targets import get_target

    if not policy.replication_target:
        raise NoReplicationTarget(f"Policy '{policy.name}' names no replication target.",
                                  detail={"policy": policy.pk})
    get_target(policy.replication_target)
    with transaction.atomic():
        active = (Job.objects.select_for_update().filter(kind=JobKind.REPLICATE, policy=policy,
                                                         status__in=ACTIVE_JOB_STATUSES).first())
        if active is not None:
            return active
        job = Job.objects.create(kind=JobKind.REPLICATE, queue=routing.queue_for(JobKind.REPLICATE), policy=policy,
                                 created_by=actor[:128], params={"target": policy.replication_target})
        jobs.enqueue(job)
    return job


def cancel_job(job: Job, *, actor: str = "") -> Job:
    """Cancel a queued job at once, or ask a running one to stop at its next chunk."""
    job = jobs.request_cancel(job)
    logger.info("job %s: cancel requested by %s (now %s)", job.pk, actor or "system", job.status)
    return job
