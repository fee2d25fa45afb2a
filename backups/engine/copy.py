"""Copy snapshots from one repository into another (replication), with restic's `copy` semantics.

Only snapshots the target does not have yet are copied, and their data deduplicates against
what the target already holds. Every blob read from the source is authenticated and its id
checked on the way (`Repository.read_blob`), so a damaged source is never replicated silently:
the copy fails naming the blob, and the snapshot is not written to the target.

Two kinds of target:

* **Related** (`Repository.init(..., related_to=source)`, CLI `init --from-repo`): the target
  holds the source's master key under its own key object, so blob ids, tree blobs and
  snapshot manifests are the same bytes in both. A blob the target's index already lists is
  neither read nor sent; trees are copied as they are; the manifest is copied byte for byte,
  so the copied snapshot keeps its id. That is what makes fail-over simple: a catalog that
  names snapshots of the primary names the same snapshots in the replica. The platform
  always replicates to related repositories.
* **Unrelated** (any other repository): blob ids are keyed hashes, so each blob is read, its id
  in the target computed, and trees rewritten with the target's ids. Data still deduplicates
  in the target, but every blob of a snapshot being copied is read from the source (a blob
  read once is remembered for the rest of the run). The copied manifest gets a new id and
  records the source's in `original` (a manifest that already has an `original` keeps it), and
  a snapshot is already in the target when a target manifest has its id as `original`.

Write order is the backup's: each snapshot's packs, then an index object for them, then the
manifest (the commit point), snapshot by snapshot. A copy that is interrupted leaves the
snapshots it finished complete and usable; running it again copies only the rest (packs of
an unfinished snapshot that no index lists are unreferenced, and the next prune removes
them like any interrupted backup's).

Locks: shared on both repositories, as a backup takes; a prune of either waits.

Object Lock: with a `retention` (an immutable replica, see objectlock.py) the copy locks what
it writes into the target exactly as a locked backup does: every pack, index object and
manifest it writes carries the retention, and before each manifest the target's packs that
the snapshot references but the copy did not write (blobs and trees the target already had)
are extended, with the target's config and key objects (`lock_snapshot_dependencies`, the
archiver's own step). A locked copy therefore never depends on an object of the target that
could be deleted before it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable

from .errors import SnapshotNotFound
from .format import BlobType
from .objectlock import Retention, lock_snapshot_dependencies, remember_written
from .packer import pack_name
from .pipeline import Batch, BlobPipeline
from .progress import ProgressReporter, check_cancelled
from .snapshot import SnapshotInfo
from .tree import TreeEntry, encode_tree

#: Plaintext handed to the target's pipeline per batch (its workers compress and seal in
#: parallel with the next reads from the source).
BATCH_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass
class CopyResult:
    """What a copy did. `copied` maps source snapshot ids to their ids in the target (the
    same id for a related target)."""

    copied: dict[str, str]
    skipped: list[str]
    blobs_copied: int = 0
    bytes_copied: int = 0
    duration_seconds: float = 0.0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def copy_snapshots(source, target, snapshot_ids: Iterable[str] | None = None, *,
                   progress=None, cancel=None, retention: Retention | None = None) -> CopyResult:
    """Copy the snapshots `snapshot_ids` (full ids, unique prefixes or "latest"; None: every
    snapshot) of `source` that `target` does not have yet, oldest first; with `retention`,
    everything each copied snapshot needs in the target is locked at least that long (see
    the module docstring). Snapshots the target already holds are skipped as they are.

    The caller holds the repositories' locks (`Repository.copy_to` takes them).
    `SnapshotNotFound` when a requested snapshot is not in the source;
    `ObjectLockUnsupported`, before anything is read, when `retention` is given and the
    target's storage cannot lock objects.
    """
    started = time.monotonic()
    if retention is not None:
        target.backend.check_object_lock()
    if snapshot_ids is None:
        wanted = source.snapshots()
    else:
        wanted = sorted({source.resolve_snapshot(reference).id: source.resolve_snapshot(reference)
                         for reference in snapshot_ids}.values(), key=lambda info: (info.time, info.id))
    related = source.is_related(target)
    present = _present_in_target(target, related)
    result = CopyResult(copied={}, skipped=[])
    to_copy = []
    for info in wanted:
        if info.id in present:
            result.skipped.append(info.id)
        else:
            to_copy.append(info)
    reporter = ProgressReporter(progress, total=sum(int(info.stats.get("bytes_total", 0) or 0)
                                                   for info in to_copy))
    target.load_index(reload=True)
    copier = _Copier(source, target, related, reporter, cancel, retention)
    for info in to_copy:
        check_cancelled(cancel)
        result.copied[info.id] = copier.copy_snapshot(info, result.copied)
    result.blobs_copied = copier.stats["blobs_new"]
    result.bytes_copied = copier.stats["bytes_stored"]
    result.duration_seconds = round(time.monotonic() - started, 3)
    reporter.finish("copy complete")
    return result


def _present_in_target(target, related: bool) -> set[str]:
    """Source snapshot ids the target already holds."""
    if related:
        return set(target.list_snapshot_ids())
    return {info.original for info in target.iter_snapshots() if info.original}


class _Copier:
    def __init__(self, source, target, related: bool, reporter: ProgressReporter, cancel,
                 retention: Retention | None):
        self.source = source
        self.target = target
        self.related = related
        self.reporter = reporter
        self.cancel = cancel
        self.stats = {"blobs_new": 0, "bytes_new": 0, "bytes_stored": 0, "packs_written": 0}
        # Unrelated targets: source id -> target id of every blob and tree handled this run.
        self.blob_ids: dict[bytes, bytes] = {}
        self.tree_ids: dict[bytes, bytes] = {}
        self.retention = retention
        #: Packs of the target that the snapshot being copied references (only collected
        #: with a retention: they must be locked as long as the copy).
        self.referenced_packs: set[str] | None = None

    def copy_snapshot(self, info: SnapshotInfo, copied: dict[str, str]) -> str:
        retention = self.retention
        self.referenced_packs = set() if retention is not None else None
        pipeline = BlobPipeline(self.target, self.stats, retention)
        try:
            tree_id = self._copy_tree(pipeline, bytes.fromhex(info.tree))
            written = pipeline.flush()
            check_cancelled(self.cancel)
            if written:
                index_name = self.target.write_index(written, retention=retention)
                if retention is not None:
                    remember_written(self.target.backend, [index_name, *map(pack_name, written)],
                                     retention)
            if retention is not None:
                lock_snapshot_dependencies(self.target, self.referenced_packs - set(written),
                                           retention)
                check_cancelled(self.cancel)
        finally:
            pipeline.shutdown()
        if self.related:
            return self.target.write_snapshot_copy(self.source, info.id, retention=retention)
        copy = dataclasses.replace(info, id="", tree=tree_id.hex(),
                                   parent=copied.get(info.parent) if info.parent else None,
                                   original=info.original or info.id)
        return self.target.write_snapshot(copy, retention=retention)

    def _copy_tree(self, pipeline: BlobPipeline, root: bytes) -> bytes:
        """Copy every blob under `root`; the root's id in the target.

        Depth-first with an explicit stack (no recursion limit on deep trees); a directory's
        tree is stored after everything under it, as a backup stores it."""
        stack: list[_Frame] = [_Frame(root, self.source.read_tree(root))]
        finished: bytes = b""
        while stack:
            frame = stack[-1]
            if frame.next_child < len(frame.entries):
                entry = frame.entries[frame.next_child]
                frame.next_child += 1
                if entry.type == "dir" and entry.subtree is not None:
                    if entry.subtree in self.tree_ids:
                        frame.subtrees[entry.name] = self.tree_ids[entry.subtree]
                    else:
                        stack.append(_Frame(entry.subtree, self.source.read_tree(entry.subtree),
                                            parent_name=entry.name))
                elif entry.type == "file":
                    frame.contents[entry.name] = self._copy_file(pipeline, entry)
                continue
            stack.pop()
            finished = self._store_tree(pipeline, frame)
            self.tree_ids[frame.tree_id] = finished
            if stack:
                stack[-1].subtrees[frame.parent_name] = finished
        return finished

    def _copy_file(self, pipeline: BlobPipeline, entry: TreeEntry) -> list:
        """The file's content in the target: a list of target ids or pending batches."""
        check_cancelled(self.cancel)
        self.reporter.advance(entry.size, entry.name)
        parts: list = []
        batch = Batch()
        for blob_id in entry.content:
            known = self._known_target_id(blob_id)
            if known is not None:
                parts.append(known)
                continue
            plaintext = self.source.read_blob(blob_id, BlobType.DATA)
            if self.related:  # its id is known now: a second reference is not read again
                self.blob_ids[blob_id] = blob_id
            batch.chunks.append(plaintext)
            batch.size += len(plaintext)
            parts.append((batch, len(batch.chunks) - 1, blob_id))
            if batch.size >= BATCH_BYTES:
                pipeline.submit(batch)
                batch = Batch()
        if batch.chunks:
            pipeline.submit(batch)
        return parts

    def _known_target_id(self, blob_id: bytes) -> bytes | None:
        """The blob's id in the target when it need not be read from the source."""
        known = self.blob_ids.get(blob_id)
        if known is not None or not self.related:
            return known
        # Same ids on both sides: a blob the target lists is there.
        return blob_id if blob_id in self.target.index else None

    def _resolve(self, parts: list) -> list[bytes]:
        resolved = []
        for part in parts:
            if isinstance(part, bytes):
                resolved.append(part)
                continue
            batch, position, source_id = part
            target_id = batch.future.result()[position]
            self.blob_ids[source_id] = target_id
            resolved.append(target_id)
        return resolved

    def _store_tree(self, pipeline: BlobPipeline, frame: "_Frame") -> bytes:
        contents = {name: self._resolve(parts) for name, parts in frame.contents.items()}
        tree_id = self._tree_in_target(pipeline, frame, contents)
        if self.referenced_packs is not None:
            for blob_ids in contents.values():
                self._reference(blob_ids)
            self._reference((tree_id,))
        return tree_id

    def _tree_in_target(self, pipeline: BlobPipeline, frame: "_Frame", contents: dict) -> bytes:
        if self.related:
            if frame.tree_id in self.target.index:
                return frame.tree_id
            # Same bytes, same id: the tree as the source stored it (not re-encoded, so a
            # tree written by an older engine keeps its exact bytes and id).
            return pipeline.store_tree(self.source.read_blob(frame.tree_id, BlobType.TREE))
        entries = [dataclasses.replace(entry, content=contents.get(entry.name, entry.content),
                                       subtree=frame.subtrees.get(entry.name, entry.subtree))
                   for entry in frame.entries]
        return pipeline.store_tree(encode_tree(entries))

    def _reference(self, blob_ids) -> None:
        """Note the target packs of blobs the target's index already lists (a blob new to the
        target is in a pack this copy writes, locked as it is stored)."""
        index = self.target.index
        for blob_id in blob_ids:
            entry = index.get(blob_id)
            if entry is not None:
                self.referenced_packs.add(entry.pack_id)


class _Frame:
    """One directory on the copy's stack: its entries, and what its children became."""

    __slots__ = ("tree_id", "entries", "next_child", "contents", "subtrees", "parent_name")

    def __init__(self, tree_id: bytes, entries: list[TreeEntry], parent_name: str = ""):
        self.tree_id = tree_id
        self.entries = entries
        self.next_child = 0
        self.contents: dict[str, list] = {}
        self.subtrees: dict[str, bytes] = {}
        self.parent_name = parent_name


__all__ = ["CopyResult", "copy_snapshots", "SnapshotNotFound"]
