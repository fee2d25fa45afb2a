"""Volume lifecycle: create, update, delete, find, measure. Views, the admin and other apps
(backups' restore-to-new-volume) call these; none of them touches pools or rows directly.

Contracts:

* `create_volume` validates, inserts the row in status `creating`, asks the pool for storage,
  then moves to `available`, or to `error` with `status_message` when the pool fails (the row
  stays so an operator can see and delete it). A duplicate name raises `VolumeExists` (409).
* `delete_volume` refuses a volume with an active backup/restore job (409 `volume_busy`),
  marks it `deleting`, removes the storage, then the row. Backups and jobs of the volume are
  kept: their `volume_id`/`volume_name` go on naming it (see backups/models.py).
* Volume status has one writer, this module. A restore holds its target `restoring`:
  `start_restoring` (available → restoring, else 409), `keep_restoring` (a redelivered
  restore), `finish_restore` (→ available, or → error for a new volume whose restore did not
  complete, which holds no usable data).
* `refresh_usage` walks the volume's storage and stores `used_bytes`; it is O(files), so
  lists never call it. Uploads and deletes keep `used_bytes` current between walks.
* `recreate_volume` inserts the row of a volume known only from its backups (`manage.py
  rebuild_catalog`), with its old id, and never touches the data: `available` when the
  pool's folder for that id is there, `data_missing` when it is not. A `data_missing` volume
  can be restored into (the restore makes the folder) or deleted; `recheck_missing_data`
  makes it `available` again once its folder is back (a disk mounted late).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from volumes.errors import PoolError, QuotaBelowUsage, VolumeBusy, VolumeExists, VolumeNotAvailable, VolumeNotFound
from volumes.models import Volume, VolumeStatus
from volumes.pools import DEFAULT_POOL, configured_pools, get_pool
from volumes.validation import NAME_PATTERN, VolumeValidationError, clean_volume_fields

logger = logging.getLogger(__name__)
_UNSET = object()


def find_volume(identifier, scope=None) -> Volume:
    """The volume with this id (UUID) or, failing that, this name; `VolumeNotFound` otherwise.

    The id is tried first: a name that happens to look like a UUID is still found by name
    when no volume has that id. With a token's `scope` (`accounts.scopes.TokenScope`), a
    volume outside it is not found either, with the same answer, so names cannot be probed.
    """
    text = str(identifier)
    queryset = Volume.objects.select_related("policy")
    if scope is not None:
        queryset = scope.volumes_of(queryset)
    try:
        volume_id = uuid.UUID(text)
    except ValueError:
        volume_id = None
    if volume_id is not None:
        volume = queryset.filter(pk=volume_id).first()
        if volume is not None:
            return volume
    # Only a valid name can exist; checking first also keeps bytes such as NUL, which
    # PostgreSQL refuses in a query, away from the database.
    volume = queryset.filter(name=text).first() if NAME_PATTERN.match(text) else None
    if volume is None:
        raise VolumeNotFound(f"Volume {text[:80]!r} does not exist.", detail={"volume": text[:80]})
    return volume


def get_volume(volume_id) -> Volume | None:
    """The volume with this id, or None."""
    return Volume.objects.filter(pk=volume_id).first()


def available_volumes():
    """Every available volume, by name."""
    return Volume.objects.filter(status=VolumeStatus.AVAILABLE).order_by("name")


def with_last_backup(queryset):
    """Annotate each volume with its newest completed backup (`last_backup_id`,
    `last_backup_at`): two indexed subqueries per page, never a query per row."""
    from django.db.models import OuterRef, Subquery

    from backups import selectors

    newest = selectors.newest_completed_backups(volume_id=OuterRef("pk"))
    return queryset.annotate(last_backup_id=Subquery(newest.values("id")[:1]),
                             last_backup_at=Subquery(newest.values("completed_at")[:1]))


def default_policy():
    from backups.models import Policy

    return Policy.objects.filter(is_default=True).order_by("pk").first()


def create_volume(fields: dict, *, actor: str = "") -> Volume:
    """Create a volume and its storage from client fields (see `clean_volume_fields`).

    `policy` defaults to the default policy when absent; `pool` to `default`.
    """
    clean = clean_volume_fields(fields, partial=False)
    if Volume.objects.filter(name=clean["name"]).exists():
        raise VolumeExists(f"A volume named {clean['name']!r} already exists.", detail={"name": clean["name"]})
    pool = get_pool(clean.get("pool", DEFAULT_POOL))
    volume_id = uuid.uuid4()
    volume = Volume(
        id=volume_id,
        name=clean["name"],
        size_gb=clean["size_gb"],
        status=VolumeStatus.CREATING,
        pool=pool.name,
        node=clean.get("node", ""),
        path=str(pool.resolve_path(volume_id)),
        labels=clean.get("labels", {}),
        policy=clean["policy"] if "policy" in clean else default_policy(),
        rpo_minutes_override=clean.get("rpo_minutes"),
    )
    try:
        with transaction.atomic():
            volume.save(force_insert=True)
    except IntegrityError:
        # Two creates raced past the exists() check; the unique index decided.
        raise VolumeExists(f"A volume named {clean['name']!r} already exists.",
                           detail={"name": clean["name"]}) from None
    try:
        pool.create(volume_id)
    except PoolError as error:
        logger.error("volume %s (%s): pool %s failed to create storage: %s", volume.name, volume.id, pool.name,
                     error.message)
        _set_status(volume, VolumeStatus.ERROR, error.message)
        return volume
    _set_status(volume, VolumeStatus.AVAILABLE, "")
    logger.info("volume %s (%s) created in pool %s by %s", volume.name, volume.id, pool.name, actor or "system")
    return volume


def update_volume(volume: Volume, fields: dict, *, actor: str = "") -> Volume:
    """Apply a partial update. `name`, `pool` and `node` cannot change (the name identifies the
    volume to automation and to its backups; moving data between pools is not an update)."""
    clean = clean_volume_fields(fields, partial=True)
    immutable = {key: "Cannot be changed after creation."
                 for key in ("name", "pool", "node") if key in clean and clean[key] != getattr(volume, key)}
    if immutable:
        raise VolumeValidationError(f"{next(iter(immutable))}: cannot be changed after creation.",
                                    detail={key: [message] for key, message in immutable.items()})
    changed = []
    if "size_gb" in clean and clean["size_gb"] != volume.size_gb:
        used = Volume.objects.filter(pk=volume.pk).values_list("used_bytes", flat=True).first() or 0
        if clean["size_gb"] * 1024**3 < used:
            raise QuotaBelowUsage(
                f"Volume {volume.name!r} holds {used} bytes; {clean['size_gb']} GiB is too small.",
                detail={"used_bytes": used, "size_gb": clean["size_gb"]},
            )
        volume.size_gb = clean["size_gb"]
        changed.append("size_gb")
    if "labels" in clean:
        volume.labels = clean["labels"]
        changed.append("labels")
    if "rpo_minutes" in clean:
        volume.rpo_minutes_override = clean["rpo_minutes"]
        changed.append("rpo_minutes_override")
    if "policy" in clean:
        volume.policy = clean["policy"]
        changed.append("policy")
    if changed:
        volume.save(update_fields=[*changed, "updated_at"])
        logger.info("volume %s (%s) updated (%s) by %s", volume.name, volume.id, ", ".join(changed), actor or "system")
    return volume


def delete_volume(volume: Volume, *, actor: str = "") -> None:
    """Delete the volume's storage and row; its backups stay (see the module docstring)."""
    from backups import selectors

    previous_status = volume.status
    # Mark `deleting` first, then look for active jobs: a backup or restore trigger checks the
    # status in its own transaction, so one that comes later is refused, and one that came
    # earlier has its job row visible to the check below (then the mark is undone).
    marked = (Volume.objects.filter(pk=volume.pk).exclude(status=VolumeStatus.RESTORING)
              .update(status=VolumeStatus.DELETING, status_message="", updated_at=timezone.now()))
    if not marked:
        raise VolumeBusy(f"Volume {volume.name!r} is being restored.", detail={"status": VolumeStatus.RESTORING})
    active_job = selectors.oldest_active_job(volume.pk)
    if active_job is not None:
        Volume.objects.filter(pk=volume.pk, status=VolumeStatus.DELETING).update(status=previous_status)
        raise VolumeBusy(
            f"Volume {volume.name!r} has an active {active_job.kind} job; cancel it or wait for it to finish.",
            detail={"job": str(active_job.id), "kind": active_job.kind, "status": active_job.status},
        )
    volume.status = VolumeStatus.DELETING
    try:
        get_pool(volume.pool).delete(volume.pk)
    except PoolError as error:
        _set_status(volume, VolumeStatus.ERROR, f"Deletion failed: {error.message}")
        raise
    # Backups and jobs point at the volume without a database constraint and with
    # DO_NOTHING, so this deletes the row alone and they keep the volume's id and name.
    Volume.objects.filter(pk=volume.pk).delete()
    logger.info("volume %s (%s) deleted by %s", volume.name, volume.id, actor or "system")


#: Statuses a restore may start from: a `data_missing` volume gets its data back this way.
RESTORABLE_STATUSES = (VolumeStatus.AVAILABLE, VolumeStatus.DATA_MISSING)


def start_restoring(volume: Volume) -> None:
    """available or data_missing → restoring, conditionally (inside the caller's transaction,
    which holds the restore job's row); `VolumeNotAvailable` (409) from any other status."""
    if not Volume.objects.filter(pk=volume.pk, status__in=RESTORABLE_STATUSES).update(
        status=VolumeStatus.RESTORING, updated_at=timezone.now()
    ):
        volume.refresh_from_db(fields=["status"])
        raise VolumeNotAvailable(
            f"Volume {volume.name} is {volume.status}; it cannot be restored into now.",
            detail={"volume": str(volume.pk), "status": volume.status},
        )
    volume.status = VolumeStatus.RESTORING


def keep_restoring(volume_id) -> None:
    """→ restoring from whatever status: a restore that runs again after its worker died."""
    Volume.objects.filter(pk=volume_id).exclude(status=VolumeStatus.RESTORING).update(status=VolumeStatus.RESTORING)


def finish_restore(volume_id, *, succeeded: bool, new_volume: bool, error: str = "") -> None:
    """restoring → available; or → error when a restore into a new volume did not complete
    (the volume holds no usable data); or → data_missing when a restore into an existing
    volume did not complete and the volume has no data folder (it was `data_missing`: a
    failed restore leaves the old data, here none). A volume no longer `restoring` is left
    alone."""
    status, message = VolumeStatus.AVAILABLE, ""
    if not succeeded and new_volume:
        status, message = VolumeStatus.ERROR, f"Restore did not complete: {error}"[:1024]
    elif not succeeded:
        volume = get_volume(volume_id)
        if volume is not None and not has_data_folder(volume):
            status, message = VolumeStatus.DATA_MISSING, missing_data_message(volume)
    Volume.objects.filter(pk=volume_id, status=VolumeStatus.RESTORING).update(
        status=status, status_message=message, updated_at=timezone.now()
    )


def refresh_usage(volume: Volume) -> int:
    """Measure the volume's storage, store `used_bytes`, and return it."""
    used = get_pool(volume.pool).usage(volume.pk)
    Volume.objects.filter(pk=volume.pk).update(used_bytes=used)
    volume.used_bytes = used
    return used


def data_folder(volume: Volume) -> Path:
    """The host folder of the volume's data: its recorded path, else its pool's."""
    return Path(volume.path) if volume.path else get_pool(volume.pool).resolve_path(volume.pk)


def has_data_folder(volume: Volume) -> bool:
    """True when the volume's pool is configured here and its data folder exists (a real
    folder, not a symlink to one)."""
    try:
        get_pool(volume.pool)
        folder = data_folder(volume)
    except PoolError:
        return False
    return folder.is_dir() and not folder.is_symlink()


def missing_data_message(volume: Volume) -> str:
    """Why the volume is `data_missing`, and what an operator can do."""
    try:
        folder = data_folder(volume)
        get_pool(volume.pool)
    except PoolError:
        return (f"Pool {volume.pool!r} is not configured on this host: configure it (VOLUME_POOLS) and run "
                "manage.py rebuild_catalog again.")[:1024]
    return f"The data folder {folder} is missing: restore a backup into the volume, or delete it."[:1024]


def recreate_volume(*, volume_id, name: str, size_gb: int, labels: dict, policy, pool: str = DEFAULT_POOL,
                    node: str = "", rpo_minutes_override: int | None = None, created_at=None,
                    recorded_path: str = "", actor: str = "") -> Volume:
    """Insert the row of a volume known from its backups, with its old id; nothing on disk
    changes. The folder is the pool's folder for the id (the data of a volume outlives the
    database), or `recorded_path` when the pool is not configured on this host. Status
    `available` (usage measured) when the folder is there, else `data_missing`.

    `VolumeExists` (409) when the id or the name is taken: the caller decides what a clash
    means. The fields are not validated again: they were when the volume was created.
    """
    if Volume.objects.filter(pk=volume_id).exists():
        raise VolumeExists(f"A volume with id {volume_id} already exists.", detail={"id": str(volume_id)})
    if Volume.objects.filter(name=name).exists():
        raise VolumeExists(f"A volume named {name!r} already exists.", detail={"name": name})
    try:
        path = str(get_pool(pool).resolve_path(volume_id))
    except PoolError:
        path = recorded_path
    volume = Volume(id=volume_id, name=name, size_gb=size_gb, status=VolumeStatus.DATA_MISSING, pool=pool,
                    node=node, path=path, labels=labels, policy=policy,
                    rpo_minutes_override=rpo_minutes_override)
    with transaction.atomic():
        volume.save(force_insert=True)
        if created_at is not None:
            # `created_at` is auto_now_add: the original time can only be written afterwards.
            Volume.objects.filter(pk=volume_id).update(created_at=created_at)
            volume.created_at = created_at
    if has_data_folder(volume):
        _set_status(volume, VolumeStatus.AVAILABLE, "")
        refresh_usage(volume)
    else:
        _set_status(volume, VolumeStatus.DATA_MISSING, missing_data_message(volume))
    logger.info("volume %s (%s) recreated from its backups (%s) by %s", volume.name, volume.id, volume.status,
                actor or "system")
    return volume


def recheck_missing_data(volume: Volume) -> bool:
    """A `data_missing` volume whose folder is there again becomes `available` (usage
    measured); True when it did. Any other volume is left alone."""
    if volume.status != VolumeStatus.DATA_MISSING or not has_data_folder(volume):
        return False
    if not Volume.objects.filter(pk=volume.pk, status=VolumeStatus.DATA_MISSING).update(
            status=VolumeStatus.AVAILABLE, status_message="", updated_at=timezone.now()):
        return False
    volume.status, volume.status_message = VolumeStatus.AVAILABLE, ""
    refresh_usage(volume)
    return True


def folders_without_volume() -> list[Path]:
    """Folders of the configured pools that belong to no volume: data the catalog does not
    know (a volume never backed up, after the database was lost). Listing only."""
    found = []
    for pool in configured_pools().values():
        folders = pool.volume_folders()
        known = set(Volume.objects.filter(pk__in=list(folders)).values_list("pk", flat=True))
        found.extend(path for volume_id, path in folders.items() if volume_id not in known)
    return sorted(found)


def _set_status(volume: Volume, status: str, message: str) -> None:
    volume.status = status
    volume.status_message = message[:1024]
    volume.save(update_fields=["status", "status_message", "updated_at"])
