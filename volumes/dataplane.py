"""The file data plane: write, read, list and delete files inside a volume, confined to it.

Contracts callers rely on:

* Writes are atomic: the body streams into a hidden temporary file in the target directory
  (`.sbp-upload-*`), which is fsynced and renamed over the target only when the whole body
  arrived within the quota. A failed write (quota, disconnect, pool error) removes the
  temporary file and any directory it created, so readers and backups see the old file or
  the new one, never a half-written one.
* Memory stays flat: the body is read in `CHUNK_SIZE` pieces and never held whole.
* The quota is `volume.quota_bytes` against `used_bytes` (apparent size of regular files)
  plus the room other uploads in progress hold (`volumes.reservations`). An upload holds
  its room in the database before it streams: all of a declared `Content-Length` at once
  (413 `payload_too_large` before any byte is read when it does not fit), or exactly what
  has arrived of an undeclared (chunked) body, one hold per read, before writing it (413
  `quota_exceeded` once it outgrows the room).
  Success turns the reservation into `used_bytes`; any failure releases it. So concurrent
  uploads can never together exceed the quota.
* Names are NFC and free of control, format and line-separator characters
  (`volumes.validation.clean_file_path`). A name stored on disk in another normalisation form
  (written by a host tool, or before names were normalised) is reached through its NFC form.
* Every path is confined to the volume (see `volumes.confinement`); symlinks are listed but
  never followed, and can be deleted (the link, not its target).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import secrets
import shutil
import stat
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from django.db.models import F

from volumes.confinement import (
    DIRECTORY_FLAGS,
    is_symlink_at,
    open_child_directory,
    open_directory,
    open_parent_directory,
    open_volume_root,
    split_relative_path,
)
from volumes.errors import (
    DirectoryNotEmpty,
    FileNotFound,
    InvalidHeader,
    InvalidPath,
    PathConflict,
    PoolError,
    QuotaExceeded,
    UploadTooLarge,
    VolumeNotAvailable,
)
from volumes.models import Volume, VolumeStatus
from volumes.reservations import NoRoom, QuotaReservation, Room
from volumes.validation import clean_file_path

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
TEMPORARY_PREFIX = ".sbp-upload-"
DEFAULT_FILE_MODE = 0o644
READABLE_STATUSES = (VolumeStatus.AVAILABLE, VolumeStatus.RESTORING, VolumeStatus.ERROR)


class IncompleteUpload(InvalidHeader):
    """The request body ended before the declared Content-Length."""

    code = "incomplete_upload"


class OverQuota(UploadTooLarge):
    """The upload grew past the volume's free room while streaming; nothing was written.

    413 like `payload_too_large`, not 507: the client asked for more than its quota, and
    repeating the request will not help until something is deleted.
    """

    code = "quota_exceeded"


@dataclass(frozen=True)
class WriteResult:
    path: str
    size: int
    sha256: str
    created: bool


@dataclass(frozen=True)
class DeleteResult:
    path: str
    type: str
    freed_bytes: int


def _storage_errors_as_platform_errors(operation):
    """Turn an unexpected OSError (a volume deleted mid-upload, a read-only or failing disk)
    into a platform error with the OS reason, instead of an anonymous 500."""

    @functools.wraps(operation)
    def wrapper(*args, **kwargs):
        try:
            return operation(*args, **kwargs)
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:
                raise InvalidPath("A path component is too long for the storage pool.") from None
            if error.errno == errno.ENOENT:
                raise FileNotFound("The path disappeared while the request used it.") from None
            logger.warning("data plane %s failed: %s", operation.__name__, error.strerror)
            raise PoolError(f"The volume's storage failed: {error.strerror}.") from None

    return wrapper


# --- headers -------------------------------------------------------------------------------
def parse_mode(value: str | None) -> int | None:
    """`X-File-Mode`: octal permission bits such as `0644` or `755` (setuid/setgid refused)."""
    if value is None or value == "":
        return None
    text = value.strip()
    if text.startswith(("0o", "0O")):
        text = text[2:]
    if not text or any(character not in "01234567" for character in text):
        raise InvalidHeader("X-File-Mode must be octal permission bits such as 0644.", detail={"header": "X-File-Mode"})
    mode = int(text, 8)
    if mode > 0o1777:
        raise InvalidHeader("X-File-Mode may set permission bits and the sticky bit only (at most 01777).",
                            detail={"header": "X-File-Mode"})
    return mode


def parse_mtime(value: str | None) -> int | None:
    """`X-File-Mtime`: Unix seconds (fractions allowed) or ISO 8601; returns nanoseconds."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        # Decimal, not float: a float cannot carry nanoseconds of a current Unix time, and
        # restores are checked against the exact mtime.
        seconds = Decimal(text)
        if not seconds.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidHeader("X-File-Mtime must be Unix seconds or an ISO 8601 time.",
                                detail={"header": "X-File-Mtime"}) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = Decimal(int(moment.timestamp())) + Decimal(moment.microsecond) / 1_000_000
    if not (0 <= seconds < 2**33):  # not before 1970, before year 2242
        raise InvalidHeader("X-File-Mtime is out of range.", detail={"header": "X-File-Mtime"})
    return int((seconds * 1_000_000_000).to_integral_value())


# --- helpers -------------------------------------------------------------------------------
def _require_status(volume: Volume, allowed) -> None:
    if volume.status not in allowed:
        raise VolumeNotAvailable(
            f"Volume {volume.name!r} is {volume.status}; this operation needs it {' or '.join(allowed)}.",
            detail={"volume": volume.name, "status": volume.status},
        )


def _path_components(raw_path, *, allow_root: bool = False) -> list[str]:
    """The NFC components of a client's path (name rules first, then confinement's syntax)."""
    return split_relative_path(clean_file_path(raw_path), allow_root=allow_root)


def _stored_name(directory_fd: int, name: str) -> str:
    """`name` as stored in the directory: itself when present, else the entry whose NFC form
    it is (sorted first if several), else itself (a new name)."""
    try:
        os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
        return name
    except FileNotFoundError:
        pass
    with os.scandir(directory_fd) as entries:
        twins = sorted(entry.name for entry in entries
                       if not entry.name.isascii() and unicodedata.normalize("NFC", entry.name) == name)
    return twins[0] if twins else name


def _on_disk_components(root_fd: int, components: list[str]) -> list[str]:
    """The components as stored on disk, so an NFC path reaches a file whose stored name is
    in another normalisation form. ASCII components are their own NFC and are not looked up;
    a missing directory, a file or a symlink on the way ends the lookup (the operation that
    follows reports it)."""
    if all(component.isascii() for component in components):
        return components
    resolved: list[str] = []
    directory_fd = os.dup(root_fd)
    try:
        for index, name in enumerate(components):
            resolved.append(name if name.isascii() else _stored_name(directory_fd, name))
            if index == len(components) - 1:
                break
            try:
                next_fd = os.open(resolved[-1], DIRECTORY_FLAGS, dir_fd=directory_fd)
            except OSError:
                return resolved + components[index + 1:]
            os.close(directory_fd)
            directory_fd = next_fd
    finally:
        os.close(directory_fd)
    return resolved


def _open_path(volume: Volume, raw_path, *, allow_root: bool = False) -> tuple[int, list[str], str]:
    """(fd on the volume's root, the path's components as stored on disk, the NFC path to
    show the client). The caller closes the fd."""
    components = _path_components(raw_path, allow_root=allow_root)
    root_fd = open_volume_root(volume.path)
    try:
        return root_fd, _on_disk_components(root_fd, components), "/".join(components)
    except BaseException:
        os.close(root_fd)
        raise


def _room_detail(room: Room, old_size: int) -> dict:
    """What a quota refusal tells the client; `available_bytes` counts the replaced file."""
    available = max(room.quota_bytes - room.used_bytes - room.reserved_bytes + old_size, 0)
    return {**room.as_detail(), "available_bytes": available}


def _add_usage(volume: Volume, delta: int) -> None:
    if delta:
        # An F() update is atomic in the database, so concurrent uploads never lose a delta.
        Volume.objects.filter(pk=volume.pk).update(used_bytes=F("used_bytes") + delta)
        volume.used_bytes += delta


def _regular_size_at(directory_fd: int, name: str) -> tuple[int, bool]:
    """(size, exists) of what `name` is now; size counts only a regular file."""
    try:
        info = os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 0, False
    if stat.S_ISDIR(info.st_mode):
        raise PathConflict("A directory exists at this path; a file cannot replace it.")
    if stat.S_ISLNK(info.st_mode):
        # Replacing the link would be safe (rename does not follow it), but a client that
        # writes "through" a symlink expects its target to change; refuse, like a read.
        raise InvalidPath("A symlink exists at this path; the data plane never writes through symlinks "
                          "(delete the link first).")
    return (info.st_size if stat.S_ISREG(info.st_mode) else 0), True


def _existing_size(root_fd: int, components: list[str]) -> tuple[int, bool]:
    """Size of the file an upload would replace, without creating anything."""
    try:
        parent_fd = open_parent_directory(root_fd, components, create=False)
    except FileNotFound:
        return 0, False
    try:
        return _regular_size_at(parent_fd, components[-1])
    finally:
        os.close(parent_fd)


def _missing_directories(root_fd: int, components: list[str]) -> list[str]:
    """Which parent directories an upload will create (so a failed upload can remove them)."""
    current_fd = os.dup(root_fd)
    try:
        for depth, name in enumerate(components[:-1]):
            try:
                next_fd = open_child_directory(current_fd, name, create=False,
                                               shown_path="/".join(components[: depth + 1]))
            except FileNotFound:
                return ["/".join(components[: index + 1]) for index in range(depth, len(components) - 1)]
            os.close(current_fd)
            current_fd = next_fd
    finally:
        os.close(current_fd)
    return []


def _remove_created_directories(root_fd: int, created: list[str]) -> None:
    for relative in reversed(created):
        components = relative.split("/")
        try:
            parent_fd = open_parent_directory(root_fd, components)
        except Exception:
            continue
        try:
            os.rmdir(components[-1], dir_fd=parent_fd)
        except OSError:
            pass  # not empty any more (a concurrent upload uses it) or already gone
        finally:
            os.close(parent_fd)


def _write_all(file_fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(file_fd, view)
        view = view[written:]


# --- write ---------------------------------------------------------------------------------
@_storage_errors_as_platform_errors
def write_file(volume: Volume, raw_path: str, stream, *, content_length: int | None,
               mode: int | None = None, mtime_ns: int | None = None) -> WriteResult:
    """Stream `stream` (anything with `read(size)`) into `raw_path` inside the volume.

    `content_length=None` means "read until EOF". See the module docstring for atomicity and
    quota rules.
    """
    _require_status(volume, (VolumeStatus.AVAILABLE,))
    root_fd, components, shown_path = _open_path(volume, raw_path)
    reservation = QuotaReservation(volume, shown_path)
    try:
        try:
            old_size, _ = _existing_size(root_fd, components)
        except (PathConflict, InvalidPath) as error:
            error.detail.setdefault("path", shown_path)
            raise
        if content_length is not None:
            try:
                reservation.hold(content_length - old_size)
            except NoRoom as refused:
                detail = _room_detail(refused.room, old_size)
                held = (f"; {detail['reserved_bytes']} more are held by uploads in progress"
                        if detail["reserved_bytes"] else "")
                raise UploadTooLarge(
                    f"The upload ({content_length} bytes) is larger than the volume's free space "
                    f"({detail['available_bytes']} bytes{held}).",
                    detail={"content_length": content_length, **detail},
                ) from None
        created_directories = _missing_directories(root_fd, components)
        parent_fd = open_parent_directory(root_fd, components, create=True)
        try:
            return _stream_into_place(volume, reservation, parent_fd, components[-1], shown_path, stream,
                                      content_length=content_length, old_size=old_size, mode=mode,
                                      mtime_ns=mtime_ns)
        except BaseException:
            os.close(parent_fd)
            parent_fd = -1
            _remove_created_directories(root_fd, created_directories)
            raise
        finally:
            if parent_fd >= 0:
                os.close(parent_fd)
    finally:
        reservation.release()  # nothing left to release after a successful commit
        os.close(root_fd)


def _over_quota(volume: Volume, refused: NoRoom, old_size: int) -> OverQuota:
    return OverQuota(f"Volume {volume.name!r} ran out of quota while receiving the upload; nothing was written.",
                     detail=_room_detail(refused.room, old_size))


def _stream_into_place(volume, reservation, parent_fd, name, shown_path, stream, *, content_length, old_size,
                       mode, mtime_ns):
    temporary_name = f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}"
    file_fd = os.open(temporary_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=parent_fd)
    renamed = False
    try:
        hasher = hashlib.sha256()
        size = 0
        while True:
            wanted = CHUNK_SIZE if content_length is None else min(CHUNK_SIZE, content_length - size)
            if wanted <= 0:
                break
            try:
                chunk = stream.read(wanted)
            except OSError:  # the client went away (Django's UnreadablePostError is an OSError)
                raise IncompleteUpload(f"The body could not be read after {size} bytes; nothing was written.",
                                       detail={"received": size, "content_length": content_length}) from None
            if not chunk:
                break
            size += len(chunk)
            try:
                if content_length is None and size - old_size > reservation.held:
                    reservation.hold(size - old_size)
                else:
                    reservation.renew_if_due()
            except NoRoom as refused:
                raise _over_quota(volume, refused, old_size) from None
            hasher.update(chunk)
            try:
                _write_all(file_fd, chunk)
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise QuotaExceeded("The storage pool is full; nothing was written.", code="pool_full") from None
                raise
        if content_length is not None and size < content_length:
            raise IncompleteUpload(f"The body ended after {size} of {content_length} bytes; nothing was written.",
                                   detail={"received": size, "content_length": content_length})
        os.fchmod(file_fd, DEFAULT_FILE_MODE if mode is None else mode)
        if mtime_ns is not None:
            os.utime(file_fd, ns=(mtime_ns, mtime_ns))
        os.fsync(file_fd)
        os.close(file_fd)
        file_fd = -1
        # Measure what we replace right before replacing it; the rename itself never follows
        # a symlink at the target (it replaces the link), so it cannot write outside. The
        # file may have changed since the upload started (replaced or deleted meanwhile), so
        # the reservation must cover the real difference before the new file appears.
        old_size_now, existed = _regular_size_at(parent_fd, name)
        try:
            reservation.ensure(size - old_size_now)
        except NoRoom as refused:
            raise _over_quota(volume, refused, old_size_now) from None
        try:
            os.rename(temporary_name, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        except IsADirectoryError:
            raise PathConflict("A directory exists at this path; a file cannot replace it.",
                               detail={"path": shown_path}) from None
        renamed = True
        os.fsync(parent_fd)  # make the rename itself durable
    except (PathConflict, InvalidPath) as error:
        error.detail.setdefault("path", shown_path)
        raise
    finally:
        if file_fd >= 0:
            os.close(file_fd)
        if not renamed:
            try:
                os.unlink(temporary_name, dir_fd=parent_fd)
            except FileNotFoundError:
                pass
    reservation.commit(size - old_size_now)
    volume.used_bytes += size - old_size_now
    return WriteResult(path=shown_path, size=size, sha256=hasher.hexdigest(), created=not existed)


# --- read ----------------------------------------------------------------------------------
@dataclass
class OpenedFile:
    file: object  # a binary file object; the caller closes it (FileResponse does)
    size: int
    mode: int
    mtime_ns: int
    name: str


@_storage_errors_as_platform_errors
def open_file(volume: Volume, raw_path: str) -> OpenedFile:
    """Open a regular file for reading; a symlink or a special file is refused, a directory
    raises `PathConflict` (callers list it instead)."""
    _require_status(volume, READABLE_STATUSES)
    root_fd, components, shown_path = _open_path(volume, raw_path)
    try:
        parent_fd = open_parent_directory(root_fd, components)
    finally:
        os.close(root_fd)
    try:
        try:
            # O_NONBLOCK: opening a FIFO planted in the volume must not hang the request.
            file_fd = os.open(components[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                              dir_fd=parent_fd)
        except FileNotFoundError:
            raise FileNotFound(f"No file {shown_path!r} in the volume.", detail={"path": shown_path}) from None
        except OSError as error:
            if error.errno == errno.ELOOP or is_symlink_at(parent_fd, components[-1]):
                raise InvalidPath(f"{shown_path!r} is a symlink; the data plane never follows symlinks.",
                                  detail={"path": shown_path}) from None
            raise
    finally:
        os.close(parent_fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(file_fd)
        kind = "directory" if stat.S_ISDIR(info.st_mode) else "special file"
        raise PathConflict(f"{shown_path!r} is a {kind}, not a regular file.",
                           detail={"path": shown_path, "type": kind})
    os.set_blocking(file_fd, True)
    return OpenedFile(file=os.fdopen(file_fd, "rb"), size=info.st_size, mode=stat.S_IMODE(info.st_mode),
                      mtime_ns=info.st_mtime_ns, name=shown_path.rsplit("/", 1)[-1])


@_storage_errors_as_platform_errors
def is_directory(volume: Volume, raw_path: str) -> bool:
    """True when `raw_path` names a directory inside the volume (never through a symlink)."""
    root_fd, components, _ = _open_path(volume, raw_path, allow_root=True)
    try:
        directory_fd = open_directory(root_fd, components)
    except (FileNotFound, PathConflict):
        return False
    finally:
        os.close(root_fd)
    os.close(directory_fd)
    return True


# --- list ----------------------------------------------------------------------------------
def _entry_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


@_storage_errors_as_platform_errors
def list_directory(volume: Volume, raw_path: str) -> list[dict]:
    """Entries of a directory, sorted by name: `name, type (file|dir|symlink|other), size,
    mode (octal string), mtime (ISO 8601 UTC), target (symlinks only)`.

    Uploads in progress (their hidden temporary files) are not listed.
    """
    _require_status(volume, READABLE_STATUSES)
    root_fd, components, shown_path = _open_path(volume, raw_path or "", allow_root=True)
    try:
        directory_fd = open_directory(root_fd, components)
    except FileNotFound:
        raise FileNotFound(f"No directory {shown_path!r} in the volume.", detail={"path": shown_path}) from None
    finally:
        os.close(root_fd)
    entries = []
    try:
        with os.scandir(directory_fd) as iterator:
            for entry in iterator:
                if entry.name.startswith(TEMPORARY_PREFIX):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listing
                entry_type = _entry_type(info.st_mode)
                item = {
                    "name": entry.name,
                    "type": entry_type,
                    "size": info.st_size if entry_type in ("file", "symlink") else 0,
                    "mode": f"{stat.S_IMODE(info.st_mode):04o}",
                    "mtime": datetime.fromtimestamp(info.st_mtime_ns / 1e9, tz=timezone.utc).isoformat(),
                }
                if entry_type == "symlink":
                    try:
                        item["target"] = os.readlink(entry.name, dir_fd=directory_fd)
                    except OSError:
                        item["target"] = None
                entries.append(item)
    finally:
        os.close(directory_fd)
    entries.sort(key=lambda item: item["name"])
    return entries


# --- delete --------------------------------------------------------------------------------
@_storage_errors_as_platform_errors
def delete_path(volume: Volume, raw_path: str, *, recursive: bool = False) -> DeleteResult:
    """Delete a file, a symlink (the link itself) or a directory (empty, or with `recursive`)."""
    _require_status(volume, (VolumeStatus.AVAILABLE,))
    root_fd, components, shown_path = _open_path(volume, raw_path)
    name = components[-1]
    try:
        parent_fd = open_parent_directory(root_fd, components)
    finally:
        os.close(root_fd)
    try:
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise FileNotFound(f"No file or directory {shown_path!r} in the volume.",
                               detail={"path": shown_path}) from None
        if stat.S_ISDIR(info.st_mode):
            freed = _delete_directory(parent_fd, name, shown_path, recursive)
            entry_type = "dir"
        else:
            os.unlink(name, dir_fd=parent_fd)
            freed = info.st_size if stat.S_ISREG(info.st_mode) else 0
            entry_type = _entry_type(info.st_mode)
    finally:
        os.close(parent_fd)
    _add_usage(volume, -freed)
    return DeleteResult(path=shown_path, type=entry_type, freed_bytes=freed)


def _delete_directory(parent_fd: int, name: str, shown_path: str, recursive: bool) -> int:
    if not recursive:
        try:
            os.rmdir(name, dir_fd=parent_fd)
        except OSError as error:
            if error.errno == errno.ENOTEMPTY:
                raise DirectoryNotEmpty(detail={"path": shown_path}) from None
            raise
        return 0
    from volumes.pools import tree_size

    directory_fd = open_child_directory(parent_fd, name, create=False, shown_path=shown_path)
    try:
        freed = tree_size(directory_fd)
    finally:
        os.close(directory_fd)
    # rmtree with dir_fd uses the fd-based walk: it never follows a symlink inside the tree.
    shutil.rmtree(name, dir_fd=parent_fd)
    return freed
