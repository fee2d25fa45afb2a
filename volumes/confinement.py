"""Keep every data-plane path inside its volume.

Two layers, both needed:

1. `split_relative_path` refuses, by syntax alone, what can never name a file inside a
   volume: absolute paths, `.`/`..` components, empty components, NUL and other control
   characters, and backslashes (which other tools may treat as separators, so a name such as
   `..\\..\\etc` is a trap for whoever restores or serves it later).
2. `open_parent_directory` then walks the components one by one with `openat` semantics
   (`os.open(..., dir_fd=parent, O_NOFOLLOW)`), refusing any component that is a symlink.
   Checking a resolved path with `realpath` and then opening it by name would be racy: a
   directory swapped for a symlink between the check and the use would let a write escape the
   volume. Holding a file descriptor for each directory and opening only single names
   relative to it closes that window: the kernel refuses to follow a symlink at every step.

The final component is opened by the caller with `O_NOFOLLOW` relative to the parent's fd
(see `volumes.dataplane`), so a symlink in the last position is never followed either.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from volumes.errors import FileNotFound, InvalidPath, PathConflict, VolumeNotAvailable

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def split_relative_path(raw_path: str, *, allow_root: bool = False) -> list[str]:
    """The components of a path relative to a volume's root, or `InvalidPath`.

    A single trailing `/` is accepted (`dir/` names `dir`). With `allow_root`, the empty
    path names the volume's root and gives `[]`.
    """
    if not isinstance(raw_path, str):
        raise InvalidPath("The path must be a string.")
    detail = {"path": raw_path[:MAX_PATH_BYTES]}
    if "\x00" in raw_path:
        shown = raw_path.replace("\x00", "\\0")[:MAX_PATH_BYTES]
        raise InvalidPath("The path contains a NUL byte.", detail={"path": shown})
    if "\\" in raw_path:
        raise InvalidPath("The path contains a backslash; use '/' between components.", detail=detail)
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in raw_path):
        raise InvalidPath("The path contains a control character.", detail=detail)
    if raw_path.startswith("/"):
        raise InvalidPath("The path must be relative to the volume's root, not absolute.", detail=detail)
    try:
        encoded_length = len(raw_path.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidPath("The path is not valid UTF-8.", detail={"path": repr(raw_path)[:MAX_PATH_BYTES]}) from None
    if encoded_length > MAX_PATH_BYTES:
        raise InvalidPath(f"The path is longer than {MAX_PATH_BYTES} bytes.", detail={"path": raw_path[:256]})
    trimmed = raw_path[:-1] if raw_path.endswith("/") else raw_path
    if trimmed == "":
        if allow_root:
            return []
        raise InvalidPath("The path names the volume's root; give a file path.", detail=detail)
    components = trimmed.split("/")
    for component in components:
        if component in ("", ".", ".."):
            raise InvalidPath("The path must not contain empty, '.' or '..' components.", detail=detail)
        if len(component.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidPath(f"A path component is longer than {MAX_NAME_BYTES} bytes.", detail=detail)
    return components


def open_volume_root(volume_path: str | Path) -> int:
    """An fd on the volume's root directory (the root itself must not be a symlink)."""
    try:
        return os.open(volume_path, DIRECTORY_FLAGS)
    except FileNotFoundError:
        raise VolumeNotAvailable("The volume's storage is missing; check the volume's status.") from None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise VolumeNotAvailable("The volume's storage is not a plain directory.") from None
        raise


def open_child_directory(parent_fd: int, name: str, *, create: bool, shown_path: str) -> int:
    """An fd on directory `name` inside `parent_fd`, never through a symlink.

    With `create`, a missing directory is made (mode 0755). Raises `InvalidPath` for a
    symlink, `PathConflict` for a non-directory, `FileNotFound` when missing.
    """
    while True:
        try:
            return os.open(name, DIRECTORY_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise FileNotFound(f"No directory {shown_path!r} in the volume.", detail={"path": shown_path}) from None
            try:
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            except FileExistsError:
                pass  # a concurrent upload made it: open it on the next turn
        except OSError as error:
            if error.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            if is_symlink_at(parent_fd, name):
                raise InvalidPath(f"{shown_path!r} is a symlink; the data plane never follows symlinks.",
                                  detail={"path": shown_path}) from None
            raise PathConflict(f"{shown_path!r} is not a directory.", detail={"path": shown_path}) from None


def open_parent_directory(root_fd: int, components: list[str], *, create: bool = False) -> int:
    """An fd on the directory that holds the last component (the caller closes it).

    Every directory on the way is opened relative to the previous one with `O_NOFOLLOW`.
    """
    current_fd = os.dup(root_fd)
    try:
        for depth, name in enumerate(components[:-1]):
            shown_path = "/".join(components[: depth + 1])
            next_fd = open_child_directory(current_fd, name, create=create, shown_path=shown_path)
            os.close(current_fd)
            current_fd = next_fd
    except BaseException:
        os.close(current_fd)
        raise
    return current_fd


def open_directory(root_fd: int, components: list[str]) -> int:
    """An fd on the directory the components name (the root for `[]`); caller closes it."""
    if not components:
        return os.dup(root_fd)
    parent_fd = open_parent_directory(root_fd, components)
    try:
        return open_child_directory(parent_fd, components[-1], create=False, shown_path="/".join(components))
    finally:
        os.close(parent_fd)


def is_symlink_at(directory_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=directory_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False
