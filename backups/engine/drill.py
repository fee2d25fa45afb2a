"""Restore drills: restore a snapshot into a scratch directory, prove that what landed on disk
is the snapshot, and remove the scratch directory again.

`drill(repo, snapshot, scratch_dir, progress=, cancel=) -> DrillReport` (callers normally go
through `Repository.drill`, which holds a shared repository lock for the whole drill, so a
prune cannot remove trees between the restore and the check):

1. **Restore** (`restorer.restore`) into `scratch_dir`, which must not exist yet. Every blob
   is authenticated on the way (AES-GCM and its keyed id), so a flipped byte in a pack, a
   missing pack or a tree that does not decode fails the drill here with the engine's own
   error (`DataIntegrityError`, `ObjectNotFound`, `FormatError`, ...), exactly as a real
   restore would.
2. **Check** (`check_restored`): the snapshot's trees and the restored directory are walked
   side by side. Every entry must exist with the snapshot's type; files, directories, FIFOs
   and device nodes must have the snapshot's permission bits (`mode`), symlinks its target,
   device nodes its device number, and files its size and content. Content is read back
   along the file's content list, each chunk as long as its blob's indexed plaintext, and
   each chunk's keyed hash (HMAC-SHA256 under the repository's id key: the blob id itself)
   must be that blob id. Names the snapshot does not hold (a restore's leftover temporary
   file) are differences too, and the names of one hard-linked inode must be one inode again.
   Device nodes need root to be created: without root, their absence is listed in `skipped`,
   not as a difference (the restore reports it as a warning too).
3. **Clean up**: `scratch_dir` is removed whatever happened (success, differences, an error,
   `Cancelled`), read-only directories included.

Not compared: owners (restored only by root), times and extended attributes (restore sets
them, but a target file system may refuse them; restore reports that as warnings).

Differences are returned in the report (`ok` False), not raised: the caller decides what
they mean (a platform job fails with the report as its result).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass, field

from .errors import TargetError
from .progress import ProgressReporter, check_cancelled
from .restorer import RestoreResult, restore
from .snapshot import SnapshotInfo
from .tree import DEVICE_TYPES, TreeEntry

#: Differences listed one by one in a report; more are only counted (a wholly wrong restore
#: of a million files must not produce a million-line job result).
MAX_REPORTED_DIFFERENCES = 50
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
          stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev"}


@dataclass
class DrillReport:
    """What `drill` found. `ok` is True when the restore matched the snapshot entry for entry."""

    snapshot_id: str
    ok: bool = True
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    specials: int = 0
    bytes_checked: int = 0
    difference_count: int = 0
    #: The first MAX_REPORTED_DIFFERENCES as {"path", "problem"}; paths start at the
    #: snapshot's root ("/etc/app.conf").
    differences: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    restore: RestoreResult | None = None
    scratch_removed: bool = False
    duration_seconds: float = 0.0

    def add_difference(self, relative: bytes, problem: str) -> None:
        self.ok = False
        self.difference_count += 1
        if len(self.differences) < MAX_REPORTED_DIFFERENCES:
            self.differences.append({"path": display_path(relative), "problem": problem})


def display_path(relative: bytes) -> str:
    """A snapshot path as text for reports: bytes that are not UTF-8 as `\\xNN` escapes (a lone
    surrogate would not survive every JSON store)."""
    return (relative or b"/").decode("utf-8", "backslashreplace")


def drill(repo, snapshot: str, scratch_dir, *, progress=None, cancel=None) -> DrillReport:
    """Restore `snapshot` into `scratch_dir` (created here; it must not exist), check it
    against the snapshot, then remove `scratch_dir`. See the module docstring.

    Raises what a restore raises (damage, a missing snapshot, `Cancelled`, `TargetError` when
    the scratch directory cannot be created). The scratch directory is removed in every case;
    `scratch_removed` in the report says whether that worked (a drill that raised tried too)."""
    started = time.monotonic()
    scratch = os.fsencode(scratch_dir)
    try:
        os.makedirs(os.path.dirname(scratch), exist_ok=True)
        os.mkdir(scratch, 0o700)
    except OSError as error:
        raise TargetError(f"cannot create the drill's scratch directory {os.fsdecode(scratch)}: "
                          f"{error.strerror}") from None
    planned = [0]

    def restoring(done: int, total: int, message: str) -> None:
        planned[0] = total
        if progress is not None:
            progress(done, 2 * total, message)

    try:
        # Resolved once: a manifest that retention removes mid-drill cannot fail the check.
        info = repo.resolve_snapshot(snapshot)
        restored = restore(repo, info.id, scratch, progress=restoring, cancel=cancel)
        report = DrillReport(snapshot_id=info.id, restore=restored)
        check_restored(repo, info, scratch, report, progress=progress, cancel=cancel, done_before=planned[0])
    except BaseException:
        remove_tree(scratch)
        raise
    report.scratch_removed = remove_tree(scratch)
    report.duration_seconds = round(time.monotonic() - started, 3)
    return report


def remove_tree(path) -> bool:
    """Remove `path` and everything below it; True when it is gone.

    Without root, folders the restore made read-only or unreadable (a snapshot's 0o555 or
    0o000 directory) stop `rmtree`: they are opened up (owner rwx, symlinks never followed)
    and the removal is tried again."""
    path = os.fsencode(path)
    if not os.path.lexists(path):
        return True
    shutil.rmtree(path, ignore_errors=True)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, stat.S_IRWXU)
        for directory, subdirectories, _files in os.walk(path):
            for name in subdirectories:
                child = os.path.join(directory, name)
                if not os.path.islink(child):
                    try:
                        os.chmod(child, stat.S_IRWXU)
                    except OSError:
                        pass  # reported below: the tree is still there
        shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def check_restored(repo, snapshot: SnapshotInfo, root, report: DrillReport, *, progress=None, cancel=None,
                   done_before: int = 0) -> DrillReport:
    """Compare the directory `root` with the tree of `snapshot` (see the module docstring) and
    record what differs in `report`. Progress continues from `done_before` bytes (the
    restore's share) up to twice that."""

    def checking(done: int, _total: int, message: str) -> None:
        if progress is not None:
            progress(done_before + done, max(2 * done_before, done_before + done), message)

    checker = _Checker(repo, report, ProgressReporter(checking if progress is not None else None), cancel)
    checker.check_tree(bytes.fromhex(snapshot.tree), os.fsencode(root), b"")
    checker.progress.finish("drill checked")
    return report


class _Checker:
    def __init__(self, repo, report: DrillReport, progress: ProgressReporter, cancel):
        self.repo = repo
        self.report = report
        self.progress = progress
        self.cancel = cancel
        self.buffer = bytearray()
        #: hardlink key -> (st_dev, st_ino) of the first name checked
        self.inodes: dict[str, tuple[int, int]] = {}

    def check_tree(self, root_tree: bytes, root: bytes, relative: bytes) -> None:
        stack = [(root_tree, root, relative)]
        while stack:
            tree_id, directory, relative = stack.pop()
            entries = self.repo.read_tree(tree_id)
            _make_traversable(directory)
            expected = set()
            for entry in entries:
                check_cancelled(self.cancel)
                name = os.fsencode(entry.name)
                expected.add(name)
                subtree = self.check_entry(entry, os.path.join(directory, name), relative + b"/" + name)
                if subtree is not None:
                    stack.append(subtree)
            for name in sorted(set(os.listdir(directory)) - expected):
                self.report.add_difference(relative + b"/" + name, "is not in the snapshot")

    def check_entry(self, entry: TreeEntry, path: bytes, relative: bytes):
        """Check one entry; for a directory, return what to walk next (its subtree)."""
        report = self.report
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            if entry.type in DEVICE_TYPES and os.geteuid() != 0:
                report.skipped.append(f"{display_path(relative)}: {entry.type} needs root to be restored")
            else:
                report.add_difference(relative, f"{entry.type} is missing")
            return None
        actual = _TYPES.get(stat.S_IFMT(info.st_mode), "other")
        if actual != entry.type:
            report.add_difference(relative, f"is a {actual}, the snapshot has a {entry.type}")
            return None
        if entry.type != "symlink" and stat.S_IMODE(info.st_mode) != entry.mode:
            report.add_difference(relative, f"mode {stat.S_IMODE(info.st_mode):04o}, the snapshot has "
                                            f"{entry.mode:04o}")
        if entry.type == "dir":
            report.dirs += 1
            return entry.subtree, path, relative
        if entry.type == "symlink":
            report.symlinks += 1
            if os.readlink(path) != os.fsencode(entry.target):
                report.add_difference(relative, "symlink target differs")
        elif entry.type == "file":
            report.files += 1
            self.check_file(entry, path, relative, info)
        else:
            report.specials += 1
            if entry.type in DEVICE_TYPES and info.st_rdev != entry.rdev:
                report.add_difference(relative, "device number differs")
        return None

    def check_file(self, entry: TreeEntry, path: bytes, relative: bytes, info: os.stat_result) -> None:
        report = self.report
        if entry.hardlink:
            inode = (info.st_dev, info.st_ino)
            first = self.inodes.get(entry.hardlink)
            if first is None:
                self.inodes[entry.hardlink] = inode
            elif first != inode:
                report.add_difference(relative, "is not a hard link of the snapshot's other names of its inode")
            else:
                return  # another name of an inode whose content was checked already
        if info.st_size != entry.size:
            report.add_difference(relative, f"size {info.st_size}, the snapshot has {entry.size}")
            return
        descriptor = _open_for_reading(path, info)
        with open(descriptor, "rb", buffering=0) as handle:
            offset = 0
            for number, blob_id in enumerate(entry.content, start=1):
                check_cancelled(self.cancel)
                located = self.repo.index.get(blob_id)
                if located is None:
                    report.add_difference(relative, f"chunk {number} is not in the repository's index")
                    return
                chunk = self.read_exactly(handle, located.raw_length)
                if len(chunk) != located.raw_length or self.repo.cipher.blob_id(chunk) != blob_id:
                    report.add_difference(relative, f"content differs in chunk {number} of {len(entry.content)} "
                                                    f"(bytes {offset}-{offset + located.raw_length - 1})")
                    return
                offset += located.raw_length
                report.bytes_checked += located.raw_length
                self.progress.advance(located.raw_length, "checking")
            if handle.read(1):
                report.add_difference(relative, "is longer than the snapshot's content")

    def read_exactly(self, handle, length: int) -> memoryview:
        """Up to `length` bytes into one reused buffer (chunks are at most a few MiB)."""
        if len(self.buffer) < length:
            self.buffer = bytearray(length)
        view = memoryview(self.buffer)[:length]
        filled = 0
        while filled < length:
            count = handle.readinto(view[filled:])
            if not count:
                break
            filled += count
        return view[:filled]


def _make_traversable(directory: bytes) -> None:
    """Without root, give the owner read and search rights on a directory the snapshot keeps
    closed (0o000, 0o311...), so its entries can be listed and checked. Its own mode was
    checked already (or it is the scratch root, which has none in the snapshot)."""
    if not os.access(directory, os.R_OK | os.X_OK):
        os.chmod(directory, stat.S_IMODE(os.lstat(directory).st_mode) | stat.S_IRUSR | stat.S_IXUSR)


def _open_for_reading(path: bytes, info: os.stat_result) -> int:
    try:
        return os.open(path, _READ_FLAGS)
    except PermissionError:
        # A file the snapshot keeps unreadable (0o200...): its mode was checked already.
        os.chmod(path, stat.S_IMODE(info.st_mode) | stat.S_IRUSR)
        return os.open(path, _READ_FLAGS)


__all__ = ["DrillReport", "MAX_REPORTED_DIFFERENCES", "check_restored", "drill", "remove_tree"]
