"""The backups app's narrow view of volumes: where a volume's data is, its usage, and making
a new volume for a restore. Everything goes through the volumes app's own services and pool
drivers when they are present, so pool details stay in `volumes/`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)


def data_path(volume) -> Path:
    """The host directory holding the volume's data."""
    if volume.path:
        return Path(volume.path)
    try:
        from volumes.pools import get_pool

        return Path(get_pool(volume.pool).resolve_path(volume.id))
    except ImportError:
        return Path(settings.VOLUME_ROOT) / str(volume.id)


def measure_usage(path: Path) -> int:
    """Apparent size of the regular files under `path`, symlinks not followed."""
    total = 0
    for directory, _, file_names in os.walk(path, followlinks=False):
        for name in file_names:
            try:
                info = os.lstat(os.path.join(directory, name))
            except OSError:  # vanished while walking
                continue
            if not os.path.islink(os.path.join(directory, name)):
                total += info.st_size
    return total


def refresh_usage(volume) -> int:
    """Measure the volume's used bytes and store them; returns the value."""
    from volumes.models import Volume

    try:
        from volumes import services as volume_services

        if hasattr(volume_services, "refresh_usage"):
            result = volume_services.refresh_usage(volume)
            if isinstance(result, int):
                return result
            volume.refresh_from_db(fields=["used_bytes"])
            return volume.used_bytes
    except ImportError:
        pass
    used = measure_usage(data_path(volume))
    Volume.objects.filter(pk=volume.pk).update(used_bytes=used, updated_at=timezone.now())
    volume.used_bytes = used
    return used


def create_volume_for_restore(*, name: str, size_gb: int, actor: str, source_volume=None):
    """Create an empty, available volume named `name` through the volumes services (name
    rules, duplicates → 409, pool folder). Labels and policy are copied from the source."""
    from volumes import services as volume_services

    fields = {"name": name, "size_gb": size_gb}
    if source_volume is not None:
        fields["labels"] = dict(source_volume.labels or {})
        fields["pool"] = source_volume.pool
    logger.info("creating volume %s for a restore (by %s)", name, actor or "system")
    return volume_services.create_volume(fields, actor=actor)
