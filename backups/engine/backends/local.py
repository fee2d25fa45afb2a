"""A repository in a local directory (or any POSIX file system: NFS, a mounted disk).

Object `<type>/<name>` is the file `<root>/<type>/<name>`. Writes are atomic and durable:
the bytes go to a temporary file in the destination directory, are fsynced, renamed over
the final name, and the directory is fsynced, so a crash leaves either no object or the
whole object, and a finished `put` survives a power loss.
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from collections.abc import Iterator

from ..backend import SPOOL_BUFFER_BYTES, Backend, Spool
from ..errors import BackendError, BackendUnavailable, ObjectCorrupt, ObjectNotFound

#: Temporary files start with this prefix; `list` skips them, so a half-written object left
#: by a crash is never seen as an object (prune's leftover sweep may delete them).
TEMPORARY_PREFIX = ".tmp-"

#: OS errors that may go away by themselves (a stale NFS handle, an interrupted call, a
#: timeout): they map to the transient `BackendUnavailable`. A full disk or an I/O error is
#: permanent: retrying it only delays the clear failure an operator must act on.
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.ESTALE, errno.ETIMEDOUT, errno.EBUSY}


def _map_os_error(error: OSError, name: str) -> BackendError:
    if isinstance(error, FileNotFoundError):
        return ObjectNotFound(f"object {name} not found", detail={"name": name})
    if error.errno in _TRANSIENT_ERRNOS:
        return BackendUnavailable(f"local storage failed temporarily on {name}: {error.strerror}",
                                  detail={"name": name})
    return BackendError(f"local storage failed on {name}: {error.strerror}", detail={"name": name})


class LocalBackend(Backend):
    """Objects as files under `root` (created on first write if missing)."""

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True):
        self.root = os.path.abspath(os.fspath(root))
        # fsync=False exists only for throwaway repositories (benchmark scratch, tests); the
        # default keeps the durability contract.
        self._fsync = fsync
        self.location = self.root

    # -- helpers --------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        if not name or name.startswith("/") or "\\" in name or "\x00" in name:
            raise BackendError(f"invalid object name {name!r}")
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise BackendError(f"invalid object name {name!r}")
        return os.path.join(self.root, *parts)

    def _fsync_directory(self, directory: str) -> None:
        if not self._fsync:
            return
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _make_directories(self, directory: str) -> None:
        # Every directory entry created here must be durable before the object inside it
        # is reported written: fsync the parent of each level that did not exist.
        missing = []
        current = directory
        while not os.path.isdir(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        os.makedirs(directory, exist_ok=True)
        for created in reversed(missing):
            self._fsync_directory(os.path.dirname(created))

    # -- contract -------------------------------------------------------------------------
    def put(self, name: str, data: bytes, retention=None) -> None:
        if retention is not None:
            self.check_object_lock()
        self._write(name, data, replace=True)

    def create(self, name: str, data: bytes) -> bool:
        return self._write(name, data, replace=False)

    def _write(self, name: str, data: bytes, *, replace: bool) -> bool:
        """Write `data` to a fsynced temporary file, then give it its name: `os.replace`
        for `put`, `os.link` for `create` (a hard link fails with EEXIST when the name is
        taken, atomically, also on NFS). False when `create` found the name taken."""
        path = self._path(name)
        directory = os.path.dirname(path)
        temporary = os.path.join(directory, f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}")
        try:
            try:
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileNotFoundError:
                self._make_directories(directory)
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(descriptor, view)
                    view = view[written:]
                if self._fsync:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
            if replace:
                os.replace(temporary, path)
            else:
                try:
                    os.link(temporary, path)
                except FileExistsError:
                    os.unlink(temporary)
                    return False
                os.unlink(temporary)
            self._fsync_directory(directory)
            return True
        except BaseException as error:
            # Any failure (including an interrupt) must not leave the temporary file behind.
            try:
                os.unlink(temporary)
            except OSError:
                pass
            if isinstance(error, OSError):
                raise _map_os_error(error, name) from error
            raise

    def spool(self) -> Spool:
        """A temporary file in the repository itself, so `put_spool` is a rename, not a
        copy. A crash leaves it to prune's sweep of temporary files, like a half-done put."""
        if not os.path.isdir(self.root):
            self._make_directories(self.root)
        path = os.path.join(self.root, f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}")
        try:
            file = open(path, "xb", buffering=SPOOL_BUFFER_BYTES)  # noqa: SIM115 - Spool closes it
        except OSError as error:
            raise _map_os_error(error, "a new spool file") from error
        return Spool(file, path)

    def put_spool(self, name: str, spool: Spool, retention=None) -> None:
        if retention is not None:
            self.check_object_lock()
        if spool.path is None or os.path.dirname(spool.path) != self.root:
            return super().put_spool(name, spool)  # not one of ours (or stored already)
        path = self._path(name)
        directory = os.path.dirname(path)
        try:
            spool.file.flush()
            if self._fsync:
                os.fsync(spool.file.fileno())
            if not os.path.isdir(directory):
                self._make_directories(directory)
            os.replace(spool.path, path)
            spool.path = None  # it is the object now: closing the spool must not remove it
            self._fsync_directory(directory)
        except OSError as error:
            raise _map_os_error(error, name) from error

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise BackendError(f"invalid range {offset}+{length} for {name}")
        path = self._path(name)
        try:
            with open(path, "rb", buffering=0) as handle:
                if offset:
                    handle.seek(offset)
                if length is None:
                    data = handle.read()
                    if offset and not data and os.fstat(handle.fileno()).st_size < offset:
                        raise ObjectCorrupt(f"object {name} is shorter than offset {offset}",
                                            detail={"name": name})
                    return data
                chunks = []
                remaining = length
                while remaining:
                    chunk = handle.read(remaining)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    remaining -= len(chunk)
        except OSError as error:
            raise _map_os_error(error, name) from error
        data = b"".join(chunks)
        if len(data) != length:
            raise ObjectCorrupt(
                f"short read of {name}: wanted {length} bytes at {offset}, got {len(data)}",
                detail={"name": name})
        return data

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the directory the prefix points into (plus its subdirectories, e.g.
        # data/ab/); `scandir` avoids a stat per entry.
        directory_part, _, name_start = prefix.rpartition("/")
        start = os.path.join(self.root, *directory_part.split("/")) if directory_part else self.root
        base = f"{directory_part}/" if directory_part else ""
        yield from self._walk(start, base, name_start)

    def _walk(self, directory: str, base: str, name_start: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return
        except OSError as error:
            raise _map_os_error(error, base or ".") from error
        for entry in entries:
            if entry.name.startswith(TEMPORARY_PREFIX) or not entry.name.startswith(name_start):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(entry.path, f"{base}{entry.name}/", "")
            else:
                yield f"{base}{entry.name}"

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as error:
            raise _map_os_error(error, name) from error
        try:
            self._fsync_directory(os.path.dirname(path))
        except OSError:
            pass  # the unlink happened; losing it in a crash only leaves garbage for prune

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def size(self, name: str) -> int:
        try:
            return os.stat(self._path(name)).st_size
        except OSError as error:
            raise _map_os_error(error, name) from error

    def list_temporary(self, min_age: float = 0.0) -> Iterator[str]:
        """Temporary files of interrupted puts, at least `min_age` seconds old (for prune).

        A young temporary file may be a put in progress (another process taking a lock), so
        cleanup passes a generous `min_age`.
        """
        now = time.time()
        for directory, _, files in os.walk(self.root):
            for file_name in files:
                if not file_name.startswith(TEMPORARY_PREFIX):
                    continue
                path = os.path.join(directory, file_name)
                try:
                    if now - os.stat(path).st_mtime < min_age:
                        continue
                except FileNotFoundError:
                    continue  # the put finished meanwhile
                yield os.path.relpath(path, self.root).replace(os.sep, "/")

    def delete_temporary(self, name: str) -> None:
        """Remove one temporary leftover named by `list_temporary`."""
        try:
            os.unlink(os.path.join(self.root, *name.split("/")))
        except FileNotFoundError:
            pass
        except OSError as error:
            raise _map_os_error(error, name) from error

    def __repr__(self) -> str:
        return f"LocalBackend({self.root!r})"
