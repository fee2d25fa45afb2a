"""Restore a snapshot (or one path in it) into a target directory.

Plan, then fetch:

1. The main thread walks the snapshot's trees (validated by `tree.decode_tree`: no "..",
   "/", NUL or duplicate names), creates directories, symlinks, FIFOs and device nodes
   (root only), and plans every file:
   its size must equal the sum of its blobs' indexed plaintext sizes (a crafted tree cannot
   make us write absurd amounts), and every blob must be indexed.
2. Worker threads take one pack at a time, read the needed byte ranges (adjacent blobs in
   one ranged get), authenticate each blob (GCM + keyed id, `Repository.open_blob`) and
   `os.pwrite` it to every place it belongs. All-zero blobs are not written: each file is
   created with `ftruncate` to its size, so zero regions stay holes (sparse).
3. A file is written under a temporary name in its final directory and renamed over the
   final name once complete, after owner/xattrs/mode/times are set: a reader never sees a
   half-written file, and rename replaces a symlink rather than following it.
4. Hardlinks are re-linked to the first restored path; directory metadata is applied
   last, deepest first (writing into a directory changes its mtime).

Nothing is written outside the target: every path is built from validated names below it,
directories are created by us or must be real directories (never symlinks), and files are
opened with O_NOFOLLOW | O_EXCL.
"""

from __future__ import annotations

import itertools
import os
import secrets
import stat
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from .errors import EngineError, FormatError, DataIntegrityError, PathNotFound, TargetError, UnsafePath
from .format import BlobType, Compression
from .memory import without_cyclic_gc
from .packer import pack_name
from .progress import ProgressReporter, check_cancelled
from .tree import SPECIAL_TYPES, TreeEntry, check_name
from .xattrs import apply_xattrs

RESTORE_WORKERS = 4
#: Blobs closer than this in a pack are fetched in one ranged read (skipping the gap costs
#: less than another request, especially on S3).
MERGE_GAP = 1024 * 1024
MAX_RANGE = 16 * 1024 * 1024
PLAN_BATCH_BYTES = 32 * 1024 * 1024
#: Zero runs of at least this size (aligned) are left as holes on restore.
SPARSE_BLOCK = 64 * 1024
_IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass
class RestoreResult:
    """What `repo.restore` returns."""

    snapshot_id: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    specials: int = 0
    hardlinks: int = 0
    bytes_written: int = 0
    duration_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def _non_zero_segments(plain: bytes, entry) -> list[tuple[int, int]]:
    """(start, end) ranges of `plain` holding non-zero bytes, at SPARSE_BLOCK granularity.

    Only blobs that compressed very well can hold long zero runs, so only those are scanned
    (`bytes.count` runs at memory speed); everything else is one segment. Skipped ranges
    stay holes because each file was created with ftruncate to its full size.
    """
    if entry.compression != Compression.ZSTD or entry.length * 4 > len(plain):
        return [(0, len(plain))]
    segments: list[tuple[int, int]] = []
    for start in range(0, len(plain), SPARSE_BLOCK):
        end = min(start + SPARSE_BLOCK, len(plain))
        if plain.count(0, start, end) == end - start:
            continue
        if segments and segments[-1][1] == start:
            segments[-1] = (segments[-1][0], end)
        else:
            segments.append((start, end))
    return segments


class _File:
    __slots__ = ("temporary", "final", "entry", "remaining", "created", "lock", "done")

    def __init__(self, temporary: bytes, final: bytes, entry: TreeEntry, remaining: int):
        self.temporary, self.final, self.entry = temporary, final, entry
        self.remaining = remaining
        self.created = False
        self.done = False
        self.lock = threading.Lock()


_sequence = itertools.count()
# A per-process random prefix plus a counter: unique names without a getrandom() syscall
# per file (measured: with busy worker threads each syscall also waits for the GIL).
_PREFIX = b".sp-restore-" + secrets.token_hex(4).encode() + b"-"


def _temporary_name(directory: bytes) -> bytes:
    """A fresh name in `directory`; creators use O_EXCL (or fail on EEXIST) and retry, so a
    leftover from a crashed restore is never overwritten or followed."""
    return os.path.join(directory, _PREFIX + str(next(_sequence)).encode())


def _retrying(create, directory: bytes) -> bytes:
    """Run `create(temporary_name)` until a name is free; return the name used."""
    for _attempt in range(100):
        temporary = _temporary_name(directory)
        try:
            create(temporary)
            return temporary
        except FileExistsError:
            continue
    raise TargetError(f"cannot create a temporary file in {os.fsdecode(directory)}")


class _Restorer:
    def __init__(self, repo, target: bytes, progress, cancel):
        self.repo = repo
        self.target = target
        self.cancel = cancel
        self.result = None
        self.files: list[_File] = []
        self.dirs: list[tuple[bytes, TreeEntry]] = []
        self.links: list[tuple[str, bytes, TreeEntry]] = []
        self.link_primary: dict[str, _File] = {}
        self.work: dict[str, dict[bytes, list]] = defaultdict(lambda: defaultdict(list))
        self.work_bytes = 0
        self.total = 0
        self.pool: ThreadPoolExecutor | None = None
        self.aborted = False
        self.futures: list = []
        self.progress = ProgressReporter(progress)
        self.written = 0
        self.counter_lock = threading.Lock()

    # -- planning (main thread) ---------------------------------------------------------------
    def ensure_dir(self, path: bytes) -> None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode):
                raise UnsafePath(f"refusing to restore into {os.fsdecode(path)}: "
                                 "exists and is not a directory (symlink or file)") from None

    def plan_tree(self, tree_id: bytes, directory: bytes) -> None:
        for entry in self.repo.read_tree(tree_id):
            check_cancelled(self.cancel)
            self.plan_entry(entry, directory)

    def plan_entry(self, entry: TreeEntry, directory: bytes) -> None:
        path = os.path.join(directory, os.fsencode(check_name(entry.name)))
        if entry.type == "dir":
            self.ensure_dir(path)
            self.dirs.append((path, entry))
            self.plan_tree(entry.subtree, path)
        elif entry.type == "symlink":
            target = os.fsencode(entry.target)
            temporary = _retrying(lambda name: os.symlink(target, name), directory)
            self.set_metadata(temporary, entry, symlink=True)
            self.replace(temporary, path)
            self.result.symlinks += 1
        elif entry.type in SPECIAL_TYPES:
            self.restore_special(entry, directory, path)
        else:
            self.plan_file(entry, directory, path)

    def restore_special(self, entry: TreeEntry, directory: bytes, path: bytes) -> None:
        """A FIFO or device node, made under a temporary name and renamed into place. Device
        nodes need root (CAP_MKNOD): without it they are a warning, not a failure."""
        if entry.type == "fifo":
            def create(name: bytes) -> None:
                os.mkfifo(name, 0o600)
        else:
            kind = stat.S_IFCHR if entry.type == "chardev" else stat.S_IFBLK

            def create(name: bytes) -> None:
                os.mknod(name, 0o600 | kind, entry.rdev)
        try:
            temporary = _retrying(create, directory)
        except PermissionError as error:
            self.result.warnings.append(
                f"{os.fsdecode(path)}: {entry.type} not restored: {error.strerror}")
            return
        self.set_metadata(temporary, entry)
        self.replace(temporary, path)
        self.result.specials += 1

    def plan_file(self, entry: TreeEntry, directory: bytes, path: bytes) -> None:
        if entry.hardlink and entry.hardlink in self.link_primary:
            self.links.append((entry.hardlink, path, entry))
            return
        index = self.repo.index
        size = 0
        for blob_id in entry.content:
            located = index.get(blob_id)
            if located is None or located.blob_type != BlobType.DATA:
                raise DataIntegrityError(f"{entry.name!r}: data blob {blob_id.hex()[:16]} "
                                     "is missing from the index")
            size += located.raw_length
        if size != entry.size:
            raise FormatError(f"{entry.name!r}: recorded size {entry.size} does not match "
                              f"its data ({size} bytes); refusing a malformed tree")
        state = _File(_temporary_name(directory), path, entry, len(entry.content))
        self.files.append(state)
        if entry.hardlink:
            self.link_primary[entry.hardlink] = state
        self.total += size
        offset = 0
        for blob_id in entry.content:
            located = index.get(blob_id)
            self.work[located.pack_id][blob_id].append((state, offset))
            offset += located.raw_length
        self.work_bytes += size
        if self.work_bytes >= PLAN_BATCH_BYTES:
            self.submit_work()
        if not entry.content:
            self.write(state, 0, None)

    # -- fetching (workers) ------------------------------------------------------------------
    def restore_pack(self, pack_id: str, blobs: dict[bytes, list]) -> None:
        index = self.repo.index
        located = sorted(((index.get(blob_id), blob_id) for blob_id in blobs),
                         key=lambda item: item[0].offset)
        ranges, current = [], []
        for item in located:
            if current and (item[0].offset - (current[-1][0].offset + current[-1][0].length)
                            > MERGE_GAP or item[0].offset + item[0].length
                            - current[0][0].offset > MAX_RANGE):
                ranges.append(current)
                current = []
            current.append(item)
        if current:
            ranges.append(current)
        name = pack_name(pack_id)
        for group in ranges:
            if self.aborted:
                return
            check_cancelled(self.cancel)
            start = group[0][0].offset
            end = max(entry.offset + entry.length for entry, _ in group)
            data = memoryview(self.repo.backend.get(name, start, end - start))
            for entry, blob_id in group:
                sealed = data[entry.offset - start: entry.offset - start + entry.length]
                plain = self.repo.open_blob(blob_id, entry, sealed)
                segments = _non_zero_segments(plain, entry)
                for state, offset in blobs[blob_id]:
                    self.write(state, offset, plain, segments)
                    self.progress.advance(entry.raw_length, "restoring")

    def write(self, state: _File, offset: int, data: bytes | None,
              segments: list[tuple[int, int]] | None = None) -> None:
        """Write one blob's bytes at `offset`; the last write of a file finishes it."""
        with state.lock:
            if not state.created:
                descriptor = self.create(state)
                whole = (state.remaining == 1 and data is not None and segments is None
                         and len(data) == state.entry.size)
                if not whole:  # holes or more blobs to come: give the file its size now
                    os.ftruncate(descriptor, state.entry.size)
                state.created = True
            else:
                descriptor = os.open(state.temporary, _WRITE_FLAGS)
        try:
            if data:
                for start, end in ((0, len(data)),) if segments is None else segments:
                    view, position = memoryview(data)[start:end], offset + start
                    while view:
                        count = os.pwrite(descriptor, view, position)
                        view, position = view[count:], position + count
                with self.counter_lock:
                    self.written += len(data)
            with state.lock:
                state.remaining -= 1
                finished = state.remaining <= 0
            if finished:
                # Metadata through the open descriptor: no path lookups, and it is the
                # file we created (O_EXCL|O_NOFOLLOW), whatever happens to the path.
                self.set_metadata(descriptor, state.entry)
        finally:
            os.close(descriptor)
        if finished:
            self.replace(state.temporary, state.final)
            state.done = True

    def create(self, state: _File) -> int:
        directory = os.path.dirname(state.final)
        while True:
            try:
                return os.open(state.temporary, _CREATE_FLAGS, 0o600)
            except FileExistsError:  # a leftover of a crashed restore: pick another name
                state.temporary = _temporary_name(directory)

    # -- metadata -----------------------------------------------------------------------------
    def set_metadata(self, path: bytes | int, entry: TreeEntry, symlink: bool = False) -> None:
        """Owner (when root), extended attributes, mode and mtime of an open descriptor or a
        path (never followed if it is a symlink). In that order: chown clears setuid bits and
        `security.capability`, and setting an access ACL rewrites the group mode bits."""
        descriptor = isinstance(path, int)
        if _IS_ROOT:
            try:
                if descriptor:
                    os.chown(path, entry.uid, entry.gid)
                else:
                    os.chown(path, entry.uid, entry.gid, follow_symlinks=False)
            except OSError as error:
                self.result.warnings.append(f"{entry.name}: chown: {error.strerror}")
        apply_xattrs(path, entry.xattrs, entry.name, self.result.warnings.append)
        if descriptor:
            os.chmod(path, entry.mode)
        elif not symlink:  # a FIFO or device node we just created
            os.chmod(path, entry.mode, follow_symlinks=False)
        try:
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=descriptor)
        except (NotImplementedError, OSError) as error:
            if not symlink:
                raise
            self.result.warnings.append(f"{os.fsdecode(path)}: symlink times: {error}")

    def replace(self, temporary: bytes, final: bytes) -> None:
        try:
            os.rename(temporary, final)
        except OSError as error:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise TargetError(f"cannot write {os.fsdecode(final)}: {error.strerror}") from None

    def cancel_pending(self) -> None:
        self.aborted = True
        for future in self.futures:
            future.cancel()

    def cleanup(self) -> None:
        for state in self.files:
            if state.created and not state.done:
                try:
                    os.unlink(state.temporary)
                except OSError:
                    pass

    def submit_work(self) -> None:
        """Hand the files planned so far to the fetch workers, one task per pack.

        Planning a big tree takes a while (thousands of directories); fetching starts after
        every PLAN_BATCH_BYTES of planned files instead of after the whole plan. A pack whose
        blobs are split over two batches is read twice, but only the needed ranges.
        """
        for future in self.futures:
            if future.done() and future.exception() is not None:
                raise future.exception()
        # Biggest packs first: the long tail of small ones fills in around them.
        jobs = sorted(self.work.items(), key=lambda item: -len(item[1]))
        self.futures.extend(self.pool.submit(self.restore_pack, pack_id, blobs)
                            for pack_id, blobs in jobs)
        self.work = defaultdict(lambda: defaultdict(list))
        self.work_bytes = 0

    def run(self, start: TreeEntry | None, tree_id: bytes | None) -> None:
        with ThreadPoolExecutor(RESTORE_WORKERS, thread_name_prefix="restore") as pool:
            self.pool = pool
            try:
                if tree_id is not None:
                    self.plan_tree(tree_id, self.target)
                else:
                    self.plan_entry(start, self.target)
                self.progress.total = self.total
                self.submit_work()
            except BaseException:
                self.cancel_pending()
                raise
            _done, pending = wait(self.futures, return_when=FIRST_EXCEPTION)
            if pending:
                self.cancel_pending()
            for future in self.futures:
                if future.done() and not future.cancelled() and future.exception():
                    raise future.exception()
        for key, path, entry in self.links:
            primary = self.link_primary[key]
            temporary = _retrying(
                lambda name: os.link(primary.final, name, follow_symlinks=False),
                os.path.dirname(path))
            self.replace(temporary, path)
            self.result.hardlinks += 1
        for path, entry in reversed(self.dirs):
            # Through a descriptor opened with O_NOFOLLOW: if the directory was swapped for
            # a symlink meanwhile, this fails instead of changing something outside.
            descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                self.set_metadata(descriptor, entry)
            finally:
                os.close(descriptor)
        self.result.files = len(self.files) + len(self.links)
        self.result.dirs = len(self.dirs)


def _locate(repo, tree_id: bytes, sub_path: str | None) -> tuple[TreeEntry | None, bytes | None]:
    """(entry, None) for a non-directory at sub_path, or (None, tree id) for a directory."""
    if sub_path is None:
        return None, tree_id
    for part in [p for p in sub_path.split("/") if p not in ("", ".")]:
        if part == "..":
            raise UnsafePath("'..' is not allowed in a snapshot path")
        if tree_id is None:
            raise PathNotFound(f"no such path in the snapshot: {sub_path}")
        match = next((e for e in repo.read_tree(tree_id) if e.name == part), None)
        if match is None:
            raise PathNotFound(f"no such path in the snapshot: {sub_path}")
        if match.type == "dir":
            tree_id, found = match.subtree, None
        else:
            tree_id, found = None, match
    return (found, None) if tree_id is None else (None, tree_id)


def restore(repo, snapshot: str, target_dir, *, sub_path: str | None = None, progress=None,
            cancel=None) -> RestoreResult:
    """Restore `snapshot` (id, prefix or "latest") into `target_dir`.

    A directory (the whole snapshot, or `sub_path` naming a directory) has its *contents*
    placed directly in `target_dir`; a file or symlink `sub_path` lands as
    `target_dir/<name>`. Existing files with the same names are replaced atomically; other
    files in the target are left alone. Every blob is authenticated (`DataIntegrityError` on
    damage); entries that would escape the target raise `UnsafePath`.
    """
    started = time.monotonic()
    info = repo.resolve_snapshot(snapshot)
    repo.load_index()
    try:
        os.makedirs(os.fsencode(target_dir), exist_ok=True)
        target = os.path.realpath(os.fsencode(target_dir))
        if not os.path.isdir(target):
            raise TargetError(f"restore target is not a directory: {target_dir}")
    except OSError as error:
        raise TargetError(f"cannot create restore target {target_dir}: {error.strerror}") from None
    start, tree_id = _locate(repo, bytes.fromhex(info.tree), sub_path)
    restorer = _Restorer(repo, target, progress, cancel)
    restorer.result = RestoreResult(snapshot_id=info.id)
    try:
        with without_cyclic_gc():
            restorer.run(start, tree_id)
    except EngineError:
        restorer.cleanup()
        raise
    except OSError as error:
        restorer.cleanup()
        raise TargetError(f"restore failed: {error.strerror or error}") from None
    except BaseException:
        restorer.cleanup()
        raise
    restorer.progress.finish("restore complete")
    result = restorer.result
    result.bytes_written = restorer.written
    result.duration_seconds = round(time.monotonic() - started, 3)
    return result
