"""Pool drivers: where a volume's data lives on a host, behind one small interface.

A pool driver owns the host side of a volume: it creates the storage, removes it, measures
it and says where it is. The API, the data plane and the backup tasks reach the data only
through `VolumePool.resolve_path` (and the data plane's confined file operations), so a
future driver (LVM, ZFS dataset, NFS export) plugs in here without touching them.

Pools are named. `default` is a `DirectoryPool` rooted at `settings.VOLUME_ROOT`
(`$DATA_DIR/volumes` unless `VOLUME_ROOT` is set). More directory pools can be declared with
`settings.VOLUME_POOLS = {"name": "/path"}` (see docs/volumes.md).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid
from pathlib import Path

from django.conf import settings

from volumes.errors import PoolError

DEFAULT_POOL = "default"


class VolumePool:
    """The contract every pool driver keeps.

    * `create(volume_id)` makes empty storage for the volume and returns its host path.
      Idempotent: creating storage that already exists and is empty succeeds, so a create that
      crashed half-way can be retried.
    * `delete(volume_id)` removes the storage and everything in it. Idempotent: storage that
      is already gone counts as deleted.
    * `usage(volume_id)` returns the bytes used by regular files (apparent size, symlinks
      not followed). It walks the data, so callers must not call it per row of a list.
    * `resolve_path(volume_id)` returns the host path without touching the disk.
    * `volume_folders()` returns {volume id: host path} of every volume's storage present in
      the pool (what `manage.py rebuild_catalog` compares with the catalog).

    Errors are raised as `volumes.errors.PoolError` with the OS reason in the message.
    """

    name: str

    def create(self, volume_id) -> Path:
        raise NotImplementedError

    def delete(self, volume_id) -> None:
        raise NotImplementedError

    def usage(self, volume_id) -> int:
        raise NotImplementedError

    def resolve_path(self, volume_id) -> Path:
        raise NotImplementedError

    def volume_folders(self) -> dict[uuid.UUID, Path]:
        raise NotImplementedError


class DirectoryPool(VolumePool):
    """A folder per volume, `<root>/<volume id>`.

    The folder is named by the volume's id, not its name, so a name can never be turned into
    a path (no traversal through names) and a deleted volume's name can be reused at once.
    """

    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = Path(root)

    def resolve_path(self, volume_id) -> Path:
        return self.root / str(volume_id)

    def create(self, volume_id) -> Path:
        path = self.resolve_path(volume_id)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PoolError(f"Cannot create the pool root {self.root}: {error.strerror}.",
                            detail={"pool": self.name}) from None
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            if not path.is_dir() or path.is_symlink() or any(path.iterdir()):
                raise PoolError(f"The pool folder for volume {volume_id} already exists and is not empty.",
                                detail={"pool": self.name}) from None
        except OSError as error:
            raise PoolError(f"Cannot create the volume folder: {error.strerror}.",
                            detail={"pool": self.name}) from None
        return path

    def delete(self, volume_id) -> None:
        path = self.resolve_path(volume_id)
        try:
            # rmtree never follows symlinks inside the tree (fd-based on Linux), so a symlink
            # planted in a volume cannot make deletion remove data outside it.
            shutil.rmtree(path)
        except FileNotFoundError:
            return
        except OSError as error:
            raise PoolError(f"Cannot remove the volume folder: {error.strerror}.",
                            detail={"pool": self.name}) from None

    def volume_folders(self) -> dict[uuid.UUID, Path]:
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise PoolError(f"Cannot list the pool root {self.root}: {error.strerror}.",
                            detail={"pool": self.name}) from None
        folders = {}
        for entry in entries:
            try:
                volume_id = uuid.UUID(entry.name)
            except ValueError:
                continue  # a restore's staging folder, or anything else put there by hand
            if str(volume_id) == entry.name and entry.is_dir(follow_symlinks=False):
                folders[volume_id] = Path(entry.path)
        return folders

    def usage(self, volume_id) -> int:
        path = self.resolve_path(volume_id)
        try:
            root_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return 0
        except OSError as error:
            raise PoolError(f"Cannot read the volume folder: {error.strerror}.",
                            detail={"pool": self.name}) from None
        try:
            return tree_size(root_fd)
        finally:
            os.close(root_fd)


def tree_size(directory_fd: int) -> int:
    """Sum of the apparent sizes of the regular files below an open directory.

    Walks with directory fds and never follows symlinks, so it measures exactly what is
    inside the tree even if someone swaps in a symlink during the walk.
    """
    total = 0
    for _, _, file_names, walk_fd in os.fwalk(".", dir_fd=directory_fd, follow_symlinks=False):
        for file_name in file_names:
            try:
                info = os.stat(file_name, dir_fd=walk_fd, follow_symlinks=False)
            except OSError as error:
                if error.errno == errno.ENOENT:  # removed while we walked
                    continue
                raise
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def configured_pools() -> dict[str, VolumePool]:
    """Every pool this process knows, by name; `default` always exists."""
    pools: dict[str, VolumePool] = {DEFAULT_POOL: DirectoryPool(DEFAULT_POOL, settings.VOLUME_ROOT)}
    for pool_name, root in getattr(settings, "VOLUME_POOLS", {}).items():
        pools[pool_name] = DirectoryPool(pool_name, Path(root).expanduser().resolve())
    return pools


def get_pool(pool_name: str) -> VolumePool:
    """The driver of a named pool; `PoolError` if no such pool is configured."""
    pools = configured_pools()
    try:
        return pools[pool_name]
    except KeyError:
        raise PoolError(f"No storage pool is named {pool_name!r}.",
                        detail={"pool": pool_name, "pools": sorted(pools)}) from None
