"""The backups app's one way into volumes: finding a volume, where its data is (and where the
pools are), its usage, making a new volume for a restore, the `restoring` status a restore
holds, and recreating volume rows from their backups (`manage.py rebuild_catalog`).

Everything goes through the volumes app's services and pool drivers, which own the volume
rows: no other module of `backups/` reads pools or writes a volume's status. The volumes
app's errors are re-exported here for the same reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

from volumes.errors import VolumeExists, VolumeNotAvailable, VolumeNotFound

logger = logging.getLogger(__name__)

__all__ = ["VolumeExists", "VolumeNotAvailable", "VolumeNotFound", "create_volume_for_restore", "data_path",
           "find_volume", "finish_restore", "folders_without_volume", "get_volume", "is_available",
           "available_volumes", "is_volume_name", "keep_restoring", "pool_roots", "recheck_missing_data",
           "recreate_volume",
           "refresh_usage", "start_restoring"]


def find_volume(reference, scope=None):
    """The volume with this id or name (inside `scope`, a token's, when given);
    `VolumeNotFound` (404) otherwise."""
    from volumes import services as volume_services

    return volume_services.find_volume(reference, scope=scope)


def is_volume_name(text: str) -> bool:
    """True when `text` can be a volume's name (a DNS label). Filters by name check it first,
    so other text (a NUL byte, which PostgreSQL refuses in a query) matches nothing."""
    from volumes.validation import NAME_PATTERN

    return bool(NAME_PATTERN.match(text))


def get_volume(volume_id):
    """The volume with this id, or None (a job's volume may have been deleted since)."""
    from volumes import services as volume_services

    return volume_services.get_volume(volume_id)


def is_available(volume) -> bool:
    """True when `volume` (as last read) may be backed up or restored into."""
    from volumes.models import VolumeStatus

    return volume.status == VolumeStatus.AVAILABLE


def available_volumes():
    """Every available volume, by name."""
    from volumes import services as volume_services

    return volume_services.available_volumes()


def start_restoring(volume) -> None:
    """Mark an available `volume` `restoring` (inside the caller's transaction);
    `VolumeNotAvailable` (409) when it is in any other status."""
    from volumes import services as volume_services

    volume_services.start_restoring(volume)


def keep_restoring(volume_id) -> None:
    """Mark the volume `restoring` whatever its status (a restore that runs again after its
    worker died finds it so already)."""
    from volumes import services as volume_services

    volume_services.keep_restoring(volume_id)


def finish_restore(volume_id, *, succeeded: bool, new_volume: bool, error: str = "") -> None:
    """The restore into `volume_id` ended: it leaves `restoring` (see
    `volumes.services.finish_restore`)."""
    from volumes import services as volume_services

    volume_services.finish_restore(volume_id, succeeded=succeeded, new_volume=new_volume, error=error)


def data_path(volume) -> Path:
    """The host directory holding the volume's data (its recorded path, else the pool's)."""
    from volumes import services as volume_services

    return volume_services.data_folder(volume)


def pool_roots() -> list[Path]:
    """The host folders of the configured directory pools, resolved: every volume's data lives
    below one of them (a drill's scratch space must not)."""
    from volumes.pools import DirectoryPool, configured_pools

    return [Path(pool.root).resolve() for pool in configured_pools().values() if isinstance(pool, DirectoryPool)]


def refresh_usage(volume) -> int:
    """Measure the volume's used bytes and store them; returns the value."""
    from volumes import services as volume_services

    return volume_services.refresh_usage(volume)


def create_volume_for_restore(*, name: str, size_gb: int, actor: str, source_volume=None):
    """Create an empty, available volume named `name` through the volumes services (name
    rules → 400, duplicate → 409, pool folder). Labels and pool are copied from the source."""
    from volumes import services as volume_services

    fields = {"name": name, "size_gb": size_gb}
    if source_volume is not None:
        fields["labels"] = dict(source_volume.labels or {})
        fields["pool"] = source_volume.pool
    logger.info("creating volume %s for a restore (by %s)", name, actor or "system")
    return volume_services.create_volume(fields, actor=actor)


def recreate_volume(**fields):
    """Insert the row of a volume known from its backups, with its old id (see
    `volumes.services.recreate_volume`): `available` or `data_missing`; `VolumeExists` when
    its id or name is taken."""
    from volumes import services as volume_services

    return volume_services.recreate_volume(**fields)


def recheck_missing_data(volume) -> bool:
    """A `data_missing` volume whose folder is back becomes `available`; True when it did."""
    from volumes import services as volume_services

    return volume_services.recheck_missing_data(volume)


def folders_without_volume() -> list[Path]:
    """Volume folders of the configured pools that no volume row owns (listing only)."""
    from volumes import services as volume_services

    return volume_services.folders_without_volume()
