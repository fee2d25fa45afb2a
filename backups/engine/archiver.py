"""Backup: walk a directory, chunk, dedup, compress, encrypt, pack, index, commit a snapshot.

Pipeline (why: FastCDC, read(), zstd, HMAC and AES-GCM release the GIL, so two cores
overlap them)::

    main thread: walk + lstat + small files (batched) + trees
    reader threads (2): read + FastCDC-cut large files      --chunks-->  worker pool:
        HMAC id -> dedup check -> zstd -> AES-GCM -> append to the open pack
    full pack --> upload threads (2): trailer + SHA-256 pack id + backend.put

Bounded (see pipeline.py): a fixed budget of plaintext queued for the workers and of
finished packs waiting for storage, so memory stays flat for any input.
Directory trees are finished in walk order (post-order) as soon as the chunk ids of their
files are known, so the walk never waits for a directory's data.

Write order: packs, then one index object, then the snapshot manifest (the commit point).
A crash or `Cancelled` before the manifest leaves only unreferenced packs for prune.

With a `retention` (S3 Object Lock, see objectlock.py) every object the backup writes is
locked, and before the manifest is written the packs the snapshot reuses from earlier backups
are locked at least as long (their names are collected as directories are finished: every
file's chunk ids and every tree id, looked up in the index). Those extended packs also get an
index object of their own, locked as long, so a locked snapshot never depends on an index
object that could be deleted before it; and the config and the key objects, without which
nothing can be decrypted, are locked as long too.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import socket
import stat
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .chunker import Chunker
from .errors import Cancelled, SnapshotNotFound, SourceError
from .memory import without_cyclic_gc
from .objectlock import Retention, lock_snapshot_dependencies, remember_written
from .packer import pack_name
from .pipeline import Batch, BlobPipeline
from .progress import ProgressReporter, check_cancelled
from .snapshot import SnapshotInfo
from .tree import TreeEntry, encode_tree, encode_xattrs
from .xattrs import read_xattrs

#: Small files are hashed/compressed in batches of about this size: one task per file would
#: cost more in thread hand-offs than the work itself.
BATCH_BYTES = 1024 * 1024
READER_THREADS = 2
#: Large files queued for the reader threads at most (each holds an open descriptor).
READER_QUEUE = 16
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)


@dataclass
class BackupResult:
    """What `repo.backup` returns."""

    snapshot_id: str
    snapshot: SnapshotInfo
    stats: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: {pack id: bytes} of the packs this backup wrote (none when everything deduplicated),
    #: so a catalog can track them from the moment they exist (e.g. until their first verify).
    packs: dict[str, int] = field(default_factory=dict)
    #: The Object Lock retention of the snapshot (None: written unlocked).
    retention: Retention | None = None
    #: Packs of earlier backups whose retention this backup extended.
    packs_extended: int = 0


class _Content:
    """A file's chunk pieces: known at once (reused, small file) or filled by a reader thread.

    `done` is the reader's future (None when complete at creation); `size` is the number of
    bytes actually read (a file may change while read).
    """

    __slots__ = ("pieces", "size", "done", "ids")

    def __init__(self, size: int = 0, ids: list[bytes] | None = None) -> None:
        self.pieces: list = []   # [(batch, position in batch)]
        self.size = size
        self.done: Future | None = None
        self.ids = ids           # known at once: reused from the parent snapshot

    def complete(self) -> bool:
        return self.done is None or self.done.done()

    def resolve(self) -> list[bytes]:
        if self.ids is not None:
            return self.ids
        if self.done is not None:
            self.done.result()  # re-raises a reader's error
        return [batch.future.result()[position] for batch, position in self.pieces]


class _Directory:
    """A directory whose tree blob is written once its files' chunk ids are known.

    `tree_id` is preset when the directory is unchanged since the parent snapshot: then its
    tree is the parent's tree, and encoding and hashing it again is skipped.
    """

    __slots__ = ("entries", "files", "subdirs", "tree_id", "checked")

    def __init__(self) -> None:
        self.entries: list[TreeEntry] = []
        self.files: list[tuple[TreeEntry, _Content]] = []
        self.subdirs: list[tuple[TreeEntry, "_Directory"]] = []
        self.tree_id: bytes | None = None
        self.checked = 0  # files[:checked] are known to be ready

    def ready(self) -> bool:
        """True when every file's chunk ids are known (resumes where the last call stopped,
        so polling a big directory stays linear)."""
        while self.checked < len(self.files):
            content = self.files[self.checked][1]
            # complete() first: a reader thread may still be appending to `pieces`.
            if content.ids is None and not (content.complete() and all(
                    batch.future is not None and batch.future.done()
                    for batch, _position in content.pieces)):
                return False
            self.checked += 1
        return True


_SAME_METADATA = ("type", "mode", "mtime_ns", "uid", "gid", "inode", "ctime_ns")
#: File types kept as they are (no content): FIFOs and device nodes.
_SPECIAL_TYPES = {stat.S_IFIFO: "fifo", stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev"}


class _ParentEntry:
    """One entry of the parent snapshot's tree, as far as change detection needs it.

    Built from the raw JSON (`Repository.read_tree_entries_raw`): no validation beyond
    GCM authentication, ids converted only when used. Anything malformed just means
    "changed" (the file is read again), never an error.
    """

    __slots__ = ("type", "mode", "mtime_ns", "uid", "gid", "inode", "ctime_ns", "size",
                 "target", "hardlink", "rdev", "xattrs", "_subtree", "_content")

    def __init__(self, raw: dict) -> None:
        get = raw.get
        self.type, self.mode, self.mtime_ns = get("type"), get("mode"), get("mtime_ns")
        self.uid, self.gid, self.inode = get("uid"), get("gid"), get("inode")
        self.ctime_ns, self.size, self.target = get("ctime_ns"), get("size"), get("target")
        self.hardlink, self._subtree, self._content = get("hardlink"), get("subtree"), \
            get("content")
        self.rdev, self.xattrs = get("rdev", 0), get("xattrs")

    @property
    def subtree(self) -> bytes | None:
        try:
            return bytes.fromhex(self._subtree)
        except (TypeError, ValueError):
            return None

    def content_ids(self) -> list[bytes] | None:
        try:
            return [bytes.fromhex(value) for value in self._content]
        except (TypeError, ValueError):
            return None


def _unchanged(entry: TreeEntry, previous: _ParentEntry | None) -> bool:
    """Same metadata as in the parent tree, extended attributes included (a parent written
    before they were kept has none, so a file with attributes is never "unchanged" there)."""
    return previous is not None and all(
        getattr(entry, name) == getattr(previous, name) for name in _SAME_METADATA) and (
        (encode_xattrs(entry.xattrs) if entry.xattrs else None) == previous.xattrs)


class _Archiver:
    def __init__(self, repo, root: bytes, parent_tree: bytes | None, progress, cancel,
                 retention: Retention | None = None):
        self.repo = repo
        #: Packs of earlier backups that the new snapshot references (only collected for a
        #: locked backup: they must be locked as long as the snapshot).
        self.referenced_packs: set[str] | None = set() if retention is not None else None
        self.root = root
        self.parent_tree = parent_tree
        self.cancel = cancel
        self.chunker_settings = repo.config.get("chunker", {})
        self.min_size = int(self.chunker_settings.get("min_size", 512 << 10))
        self.stats = collections.Counter(
            files=0, dirs=0, symlinks=0, specials=0, files_read=0, files_reused=0, bytes_total=0,
            bytes_read=0, bytes_new=0, bytes_stored=0, blobs_new=0, packs_written=0,
            skipped=0, warnings=0)
        self.stats_lock = threading.Lock()
        self.warnings: list[str] = []
        self.pipeline = BlobPipeline(repo, self.stats, retention)
        self.batch = Batch()
        self.pending: collections.deque[_Directory] = collections.deque()
        self.hardlinks: dict[tuple[int, int], _Content] = {}
        self.local = threading.local()
        # Large files are read and cut by reader threads (FastCDC and read() release the
        # GIL), so the walk, small files and tree work on the main thread overlap with them.
        self.readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="backup-reader")
        self.reader_slots = threading.Semaphore(READER_QUEUE)
        self.aborted = False
        self.small_read = [0, 0]  # files, bytes read on the main thread (read_small)
        self.progress = ProgressReporter(progress, total=self._estimate() if progress else 0)

    def _estimate(self) -> int:
        total = 0
        for _dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(_dirpath, name)).st_size
                except OSError:
                    pass
        return total

    def _chunker(self) -> Chunker:
        chunker = getattr(self.local, "chunker", None)
        if chunker is None:  # one per reader thread: it owns a reusable buffer (up to 16 MiB)
            settings = self.chunker_settings
            chunker = self.local.chunker = Chunker(
                min_size=settings.get("min_size", 512 << 10),
                avg_size=settings.get("avg_size", 1 << 20),
                max_size=settings.get("max_size", 8 << 20))
        return chunker

    def warn(self, message: str) -> None:
        with self.stats_lock:
            if len(self.warnings) < 1000:
                self.warnings.append(message)
            self.stats["warnings"] += 1

    def count(self, **amounts: int) -> None:
        with self.stats_lock:
            for name, amount in amounts.items():
                self.stats[name] += amount

    def check_running(self) -> None:
        if self.aborted:
            raise Cancelled("backup aborted")
        check_cancelled(self.cancel)

    # -- chunk submission ------------------------------------------------------------------------
    def add_large_chunk(self, data: bytes, pieces: list) -> None:
        """Any thread: one chunk, one worker task."""
        batch = Batch()
        batch.chunks.append(data)
        batch.size = len(data)
        pieces.append((batch, 0))
        self.pipeline.submit(batch)

    def add_small_chunk(self, data: bytes, pieces: list) -> None:
        """Main thread only: small chunks share a batch until it holds BATCH_BYTES."""
        pieces.append((self.batch, len(self.batch.chunks)))
        self.batch.chunks.append(data)
        self.batch.size += len(data)
        if self.batch.size >= BATCH_BYTES:
            self.flush_batch()

    def flush_batch(self) -> None:
        if self.batch.chunks:
            self.pipeline.submit(self.batch)
            self.batch = Batch()

    # -- tree completion -------------------------------------------------------------------------
    def finish_ready(self, wait: bool = False) -> None:
        while self.pending and (wait or self.pending[0].ready()):
            self.finish_directory(self.pending.popleft())

    def finish_directory(self, directory: _Directory) -> None:
        for entry, content in directory.files:
            entry.content = content.resolve()
            entry.size = content.size
            if self.referenced_packs is not None:
                self.reference(entry.content)
        if directory.tree_id is None:
            for entry, child in directory.subdirs:
                entry.subtree = child.tree_id
            directory.tree_id = self.pipeline.store_tree(encode_tree(directory.entries))
        if self.referenced_packs is not None:
            self.reference((directory.tree_id,))

    def reference(self, blob_ids) -> None:
        """Note the packs of already indexed blobs (new blobs are in packs this backup
        writes, locked as they are stored)."""
        index = self.repo.index
        for blob_id in blob_ids:
            entry = index.get(blob_id)
            if entry is not None:
                self.referenced_packs.add(entry.pack_id)

    # -- walking -------------------------------------------------------------------------------
    def run(self) -> bytes:
        try:
            root = self.walk(self.root, self.parent_tree)
            self.flush_batch()
            self.finish_ready(wait=True)
            self.count(files_read=self.small_read[0], bytes_read=self.small_read[1])
            return root.tree_id
        except BaseException as error:
            self.aborted = True
            self.pipeline.failed = error
            raise
        finally:
            self.readers.shutdown(wait=True, cancel_futures=True)

    def _parent_entries(self, tree_id: bytes | None) -> dict[str, _ParentEntry]:
        if tree_id is None:
            return {}
        try:
            return {raw["name"]: _ParentEntry(raw)
                    for raw in self.repo.read_tree_entries_raw(tree_id)}
        except Exception as error:  # a damaged parent only costs re-reading, never the backup
            self.warn(f"parent tree unreadable, files re-read: {error}")
            return {}

    def walk(self, path: bytes, parent_tree: bytes | None) -> _Directory:
        directory = _Directory()
        parent = self._parent_entries(parent_tree)
        try:
            with os.scandir(path) as iterator:
                listing = sorted(iterator, key=lambda item: item.name)
        except OSError as error:
            if path == self.root:
                raise SourceError(f"cannot read source directory: {error.strerror}") from None
            self.warn(f"{os.fsdecode(path)}: cannot list: {error.strerror}")
            listing = []
        # Unchanged = same names, and every entry unchanged (files reused, subdirectories
        # unchanged): then the new tree would be byte-identical to the parent's.
        unchanged = parent_tree is not None and len(listing) == len(parent)
        for item in listing:
            self.check_running()
            name = os.fsdecode(item.name)
            try:
                info = item.stat(follow_symlinks=False)
            except OSError as error:
                self.warn(f"{os.fsdecode(item.path)}: vanished or unreadable: {error.strerror}")
                unchanged = False
                continue
            entry = TreeEntry(name=name, type="file", mode=stat.S_IMODE(info.st_mode),
                              mtime_ns=info.st_mtime_ns, uid=info.st_uid, gid=info.st_gid,
                              inode=info.st_ino, ctime_ns=info.st_ctime_ns,
                              xattrs=read_xattrs(item.path, self.warn))
            previous = parent.get(name)
            if stat.S_ISDIR(info.st_mode):
                entry.type = "dir"
                previous_tree = previous.subtree if previous is not None \
                    and previous.type == "dir" else None
                child = self.walk(item.path, previous_tree)
                directory.subdirs.append((entry, child))
                self.stats["dirs"] += 1  # main-thread-only counters: no lock
                if unchanged and not (child.tree_id is not None
                                      and child.tree_id == previous_tree
                                      and _unchanged(entry, previous)):
                    unchanged = False
            elif stat.S_ISLNK(info.st_mode):
                try:
                    entry.target = os.fsdecode(os.readlink(item.path))
                except OSError as error:
                    self.warn(f"{os.fsdecode(item.path)}: vanished: {error.strerror}")
                    unchanged = False
                    continue
                entry.type = "symlink"
                self.stats["symlinks"] += 1
                if unchanged and not (_unchanged(entry, previous)
                                      and previous.target == entry.target):
                    unchanged = False
            elif stat.S_ISREG(info.st_mode):
                content, reused = self.file_content(item.path, info, entry, previous)
                if content is None:
                    unchanged = False
                    continue
                directory.files.append((entry, content))
                self.stats["files"] += 1
                if unchanged and not (reused and _unchanged(entry, previous)
                                      and previous.hardlink == entry.hardlink):
                    unchanged = False
            elif stat.S_IFMT(info.st_mode) in _SPECIAL_TYPES:
                entry.type = _SPECIAL_TYPES[stat.S_IFMT(info.st_mode)]
                if entry.type != "fifo":
                    entry.rdev = info.st_rdev
                self.stats["specials"] += 1
                if unchanged and not (_unchanged(entry, previous) and previous.rdev == entry.rdev):
                    unchanged = False
            else:  # sockets: a listening process recreates them, nothing to restore
                self.stats["skipped"] += 1
                self.warn(f"{os.fsdecode(item.path)}: socket skipped")
                unchanged = False
                continue
            directory.entries.append(entry)
        if unchanged and parent_tree in self.repo.index:
            directory.tree_id = parent_tree
        self.pending.append(directory)
        self.finish_ready()
        return directory

    def file_content(self, path: bytes, info: os.stat_result, entry: TreeEntry,
                     previous: TreeEntry | None) -> tuple[_Content | None, bool]:
        """(content, reused from parent); content None when the file vanished."""
        self.stats["bytes_total"] += info.st_size
        link_key = None
        if info.st_nlink > 1:
            link_key = (info.st_dev, info.st_ino)
            entry.hardlink = f"{info.st_dev}:{info.st_ino}"
            if link_key in self.hardlinks:
                return self.hardlinks[link_key], False  # one inode: read once, same chunks
        ids = None
        if (previous is not None and previous.type == "file"
                and previous.size == info.st_size and previous.mtime_ns == info.st_mtime_ns
                and previous.inode == info.st_ino and previous.ctime_ns == info.st_ctime_ns):
            ids = previous.content_ids()
            if ids is not None and not all(blob_id in self.repo.index for blob_id in ids):
                ids = None
        reused = ids is not None
        if reused:
            content = _Content(previous.size, ids=ids)
            self.stats["files_reused"] += 1
            self.progress.advance(info.st_size, path)
        else:
            descriptor = self.open_file(path)
            if descriptor is None:
                return None, False
            content = _Content()
            if info.st_size < self.min_size:
                self.read_small(descriptor, path, info, content)
            else:
                self.reader_slots.acquire()
                try:
                    content.done = self.readers.submit(self.read_large, descriptor, path,
                                                       info, content)
                except BaseException:
                    self.reader_slots.release()
                    os.close(descriptor)
                    raise
        if link_key is not None:
            self.hardlinks[link_key] = content
        return content, reused

    def open_file(self, path: bytes) -> int | None:
        try:
            try:
                return os.open(path, _READ_FLAGS | _NOATIME)
            except PermissionError:  # O_NOATIME needs ownership; retry without it
                return os.open(path, _READ_FLAGS)
        except OSError as error:
            self.warn(f"{os.fsdecode(path)}: vanished or unreadable: {error.strerror}")
            return None

    def read_small(self, descriptor: int, path: bytes, info: os.stat_result,
                   content: _Content) -> None:
        """Main thread: a file below the chunker minimum is one chunk, batched."""
        size = 0
        after = info
        try:
            data = os.read(descriptor, self.min_size)
            # A short read of a regular file is its end: no second read() per small file.
            # A file that grew past the small-file limit meanwhile continues in min-size
            # pieces (poorer dedup for that file, nothing lost; the fstat below warns).
            while data:
                size += len(data)
                self.add_small_chunk(data, content.pieces)
                if len(data) < self.min_size:
                    break
                data = os.read(descriptor, self.min_size)
            if size != info.st_size or size >= self.min_size:
                # Only then can the file have changed under the read; one read() of the
                # whole (unchanged-size) file needs no fstat: a syscall per small file saved.
                after = os.fstat(descriptor)
        except OSError as error:
            self.warn(f"{os.fsdecode(path)}: read failed, stored as read so far: "
                      f"{error.strerror}")
        finally:
            os.close(descriptor)
        self.progress.advance(size, path)
        if after is not None and (size != info.st_size or after.st_size != info.st_size
                                  or after.st_mtime_ns != info.st_mtime_ns):
            self.warn(f"{os.fsdecode(path)}: changed while being read")
        content.size = size
        # Main thread: its own counters (no lock per file), merged into stats at the end.
        self.small_read[0] += 1
        self.small_read[1] += size

    def read_large(self, descriptor: int, path: bytes, info: os.stat_result,
                   content: _Content) -> None:
        """Reader thread: cut a file with FastCDC and hand each chunk to the workers."""
        size = 0
        try:
            try:
                for data in self._chunker().chunks(descriptor, info.st_size):
                    size += len(data)
                    self.add_large_chunk(data, content.pieces)
                    self.progress.advance(len(data), path)
                    self.check_running()
                after = os.fstat(descriptor)
            finally:
                os.close(descriptor)
        except OSError as error:
            self.warn(f"{os.fsdecode(path)}: read failed, stored as read so far: "
                      f"{error.strerror}")
            after = None
        finally:
            self.reader_slots.release()
        self.finish_read(path, info, after, size, content)

    def finish_read(self, path, info, after, size: int, content: _Content) -> None:
        if after is not None and (size != info.st_size or after.st_size != info.st_size
                                  or after.st_mtime_ns != info.st_mtime_ns):
            self.warn(f"{os.fsdecode(path)}: changed while being read")
        content.size = size
        self.count(files_read=1, bytes_read=size)


def backup(repo, source_dir, *, source: str | None = None, tags=(), parent="auto",
           progress=None, cancel=None, hostname: str | None = None,
           metadata: dict | None = None, retention: Retention | None = None) -> BackupResult:
    """Back up the contents of `source_dir` into a new snapshot.

    `source` names what is backed up (default: the absolute path) and selects the parent
    when `parent="auto"` (the latest snapshot with the same source); `parent=None` reads
    everything. A `parent` given as a full snapshot id that no longer exists also reads
    everything (it was forgotten meanwhile); that is not an error. `metadata` (a JSON
    object, the caller's own) is stored in the manifest and returned with the snapshot. Files that vanish or change while read become warnings in the result and
    the snapshot's stats. `Cancelled` (from `cancel()`) or any error leaves no snapshot.
    `retention` locks the snapshot and everything it references (see the module docstring);
    `ObjectLockUnsupported` before anything is read when the storage cannot lock objects.
    """
    started = time.monotonic()
    if retention is not None:
        repo.backend.check_object_lock()
    root = os.path.abspath(os.fsencode(source_dir))
    if not os.path.isdir(root):
        raise SourceError(f"source is not a directory: {os.fsdecode(root)}")
    source = source or os.fsdecode(root)
    parent_info = None
    if parent == "auto":
        candidates = repo.snapshots(source=source)
        parent_info = candidates[-1] if candidates else None
    elif parent:
        try:
            parent_info = repo.resolve_snapshot(parent)
        except SnapshotNotFound:
            if len(parent) != 64:
                raise  # a prefix or "latest" that names nothing is the caller's mistake
            # A full id that is gone (forgotten by prune since the caller looked it up):
            # the parent only saves reading unchanged files, so back up without one.
            parent_info = None
    repo.load_index(reload=True)
    with without_cyclic_gc():
        return _run_backup(repo, root, source, tags, parent_info, progress, cancel, hostname,
                           started, dict(metadata or {}), retention)


def _run_backup(repo, root, source, tags, parent_info, progress, cancel, hostname, started,
                metadata, retention):
    archiver = _Archiver(repo, root, bytes.fromhex(parent_info.tree) if parent_info else None,
                         progress, cancel, retention)
    extended: list[str] = []
    try:
        tree_id = archiver.run()
        written = archiver.pipeline.flush()
        check_cancelled(cancel)
        if written:
            index_name = repo.write_index(written, retention=retention)
            if retention is not None:
                remember_written(repo.backend, [index_name, *map(pack_name, written)], retention)
        if retention is not None:
            extended = lock_snapshot_dependencies(repo, archiver.referenced_packs - set(written),
                                                  retention)
            check_cancelled(cancel)
    finally:
        archiver.pipeline.shutdown()
    stats = dict(archiver.stats)
    stats["duration_seconds"] = round(time.monotonic() - started, 3)
    info = SnapshotInfo(id="", time=dt.datetime.now(dt.timezone.utc), source=source,
                        tags=sorted(set(tags)), tree=tree_id.hex(),
                        hostname=hostname if hostname is not None else socket.gethostname(),
                        paths=[os.fsdecode(root)], parent=parent_info.id if parent_info else None,
                        stats=stats, warnings=list(archiver.warnings), metadata=metadata)
    snapshot_id = repo.write_snapshot(info, retention=retention)
    archiver.progress.finish("backup complete")
    return BackupResult(snapshot_id=snapshot_id, snapshot=info, stats=stats,
                        warnings=list(archiver.warnings), packs=dict(archiver.pipeline.written_sizes),
                        retention=retention, packs_extended=len(extended))
