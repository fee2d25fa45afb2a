"""The backups app's narrow view of volumes: where a volume's data is, its usage, and making
a new volume for a restore. Everything goes through the volumes app's services and pool
drivers, so pool details stay in `volumes/`.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def data_path(volume) -> Path:
    """The host directory holding the volume's data (its recorded path, else the pool's)."""
    if volume.path:
        return Path(volume.path)
    from volumes.pools import get_pool

    return Path(get_pool(volume.pool).resolve_path(volume.pk))


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
