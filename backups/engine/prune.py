"""Forget (retention on snapshot manifests) and prune (free the data nothing references).

`forget_snapshots` deletes manifests the retention policy does not keep. It is cheap, and
safe at any time: a manifest is one object, and the data it referenced stays until prune.

`prune_repository` runs under an EXCLUSIVE repository lock, so no backup is between writing
its packs and committing its snapshot (see `locking.py` for why a lock and not a grace
period). Steps, in this order, each one safe to interrupt:

1. Load every index object (refuse to run if any is damaged: we could not tell what is used).
2. Mark: walk every snapshot's trees and collect the blob ids they reference (refuse to run if
   a snapshot or tree is unreadable, or a referenced blob is not indexed: the repository
   needs repair, and deleting now could make it worse).
3. Plan, per pack: *unused* (no referenced blob whose canonical copy is there) -> delete;
   *mostly unused* (referenced bytes < `repack_threshold` of the pack) -> repack; else keep.
   Packs in storage that no index names (left by interrupted backups) -> delete.
4. Repack: copy the referenced blobs of the packs to repack into new packs. Each blob is
   authenticated first; its sealed record is copied unchanged (GCM binds the blob id, type
   and compression, not the pack). New packs are written before anything is deleted.
   Crash here: the new packs are leftovers in no index; the next prune deletes them.
5. Write new index objects that cover every referenced blob (kept packs + new packs).
   Crash here: old and new indexes overlap; both point at packs that exist, so reads work.
6. Delete the old index objects. Crash here: some packs are in no index any more; they are
   leftovers, deleted by the next prune.
7. Delete the unused, repacked and leftover packs; then interrupted-upload leftovers
   (`.tmp-*` files on local disk, unfinished multipart uploads on S3).

Object Lock (objectlock.py): when the storage can lock objects, nothing locked is deleted.
Forget keeps a locked manifest (and reports it in `ForgetResult.locked`); `delete_snapshot`
raises `ObjectLocked`. Prune reads the retention of every object it would delete (one HEAD
each, unless this process already knows it locked) before deleting anything: a locked pack is kept (as if used; a locked leftover stays a
leftover), and a locked index object is kept together with EVERY pack it lists: that index
stays in the repository and is loaded by every later backup, which would otherwise find blobs
"already stored" in a deleted pack and skip writing them. Dry runs report the same counts.

At no point does an existing index name a pack that has been deleted, and at no point is a
referenced blob without an indexed copy. Before every destructive step the lock is checked
(`HeldLock.check`): if it could not be refreshed, prune stops rather than race a backup.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from .errors import EngineError, DataIntegrityError, ObjectLocked, SnapshotNotFound
from .format import BlobType
from .index import Index, IndexEntry, decode_index, write_index
from .locking import repository_lock
from .objectlock import is_locked, locked_until
from .packer import PackBuilder, PackEntry, pack_name
from .retention import RetentionPolicy, apply_retention
from .verify import pack_sizes
from .walk import walk_trees

#: A pack whose referenced bytes are below this share of its blob bytes is rewritten.
DEFAULT_REPACK_THRESHOLD = 0.5
#: Seconds prune queues for the exclusive lock behind running backups before giving up
#: with the transient `RepositoryLocked` (new backups are held off meanwhile; see locking).
DEFAULT_LOCK_WAIT = 60.0
#: Interrupted-upload leftovers younger than this are left for a later prune.
DEFAULT_LEFTOVER_MIN_AGE = 3600.0
#: Blob entries per index object written by prune (keeps each index object a few MiB).
INDEX_ENTRIES_PER_OBJECT = 100_000


# --- forget --------------------------------------------------------------------------------
@dataclass
class ForgetResult:
    """Snapshot ids kept and removed (newest first), and why each kept one was kept."""

    keep: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False
    #: {snapshot id: retain-until (ISO 8601)} of manifests the policy would remove but that
    #: are locked (S3 Object Lock): they are kept (and listed in `keep`).
    locked: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def forget_snapshots(repo, policy, source: str | None = None, dry_run: bool = False,
                     now: dt.datetime | None = None, *, timezone: dt.tzinfo | None = None,
                     keep: Mapping[str, str] | None = None, lock: bool = True) -> ForgetResult:
    """Apply `policy` to each source's snapshots (or only `source`'s); delete the rest.

    `policy` is a `RetentionPolicy` or a dict for `RetentionPolicy.from_dict`. Retention is
    per source: one busy source never pushes another's snapshots out. `timezone` sets where
    calendar periods begin; without it, the zone of an aware `now` does (so a caller can pass
    `now` in the policy's zone through `Repository.forget`), else UTC. A dry run deletes
    nothing and returns what would go. Data is freed only by `prune_repository`.
    `keep` ({snapshot id: reason}) is kept whatever the policy says (`apply_retention`).
    """
    if not isinstance(policy, RetentionPolicy):
        policy = RetentionPolicy.from_dict(policy)
    if lock:
        with repository_lock(repo.backend, exclusive=False, holder="forget"):
            return forget_snapshots(repo, policy, source, dry_run, now, timezone=timezone,
                                    keep=keep, lock=False)
    now = now or dt.datetime.now(dt.timezone.utc)
    groups: dict[str, list] = {}
    for info in repo.snapshots(source=source):
        groups.setdefault(info.source, []).append((info.id, info.time))
    result = ForgetResult(dry_run=dry_run)
    for _, snapshots in sorted(groups.items()):
        kept, remove, reasons = apply_retention(snapshots, policy, now, timezone=timezone, keep=keep)
        result.keep.extend(kept)
        result.remove.extend(remove)
        result.reasons.update(reasons)
    if repo.backend.object_lock_enabled():
        locked = _locked_objects(repo, [f"snapshots/{sid}" for sid in result.remove])
        for name, until in locked.items():
            snapshot_id = name.rsplit("/", 1)[-1]
            result.remove.remove(snapshot_id)
            result.keep.append(snapshot_id)
            result.reasons.setdefault(snapshot_id, []).append(f"object lock until {until}")
            result.locked[snapshot_id] = until
    if not dry_run:
        for snapshot_id in result.remove:
            repo.backend.delete(f"snapshots/{snapshot_id}")
    return result


def delete_snapshot(repo, snapshot_id: str) -> None:
    """Remove one snapshot manifest; `SnapshotNotFound` when there is none, `ObjectLocked`
    (nothing changed) when it is locked."""
    with repository_lock(repo.backend, exclusive=False, holder=f"forget {snapshot_id[:12]}"):
        name = f"snapshots/{snapshot_id}"
        if not repo.backend.exists(name):
            raise SnapshotNotFound(f"no snapshot {snapshot_id}")
        retention = repo.backend.retention(name)
        if is_locked(retention):
            raise ObjectLocked(f"snapshot {snapshot_id} is locked ({retention.mode}) until "
                               f"{retention.until.isoformat()}",
                               detail={"snapshot_id": snapshot_id,
                                       "locked_until": retention.until.isoformat(),
                                       "mode": retention.mode})
        repo.backend.delete(name)


def _locked_objects(repo, names: list[str]) -> dict[str, str]:
    """{name: retain-until (ISO 8601)} of those `names` still locked (see
    `objectlock.locked_until`: known locks cost nothing, the rest one HEAD each)."""
    return {name: until.isoformat() for name, until in locked_until(repo.backend, names).items()}


# --- prune ---------------------------------------------------------------------------------
@dataclass
class PruneResult:
    """What prune did (or, in a dry run, would do)."""

    dry_run: bool = False
    snapshots: int = 0
    packs_before: int = 0
    packs_kept: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    leftover_packs_deleted: int = 0
    blobs_referenced: int = 0
    blobs_removed: int = 0
    index_objects_written: int = 0
    index_objects_deleted: int = 0
    bytes_before: int = 0
    bytes_freed: int = 0
    temporary_files_removed: int = 0
    incomplete_uploads_aborted: int = 0
    #: Kept because they are locked (S3 Object Lock) although prune would have removed them.
    locked_packs_kept: int = 0
    locked_index_objects_kept: int = 0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _Plan:
    referenced: set[bytes]
    canonical: dict[bytes, IndexEntry]          # blob -> the copy readers use
    by_pack: dict[str, list[tuple[bytes, IndexEntry]]]
    stored: dict[str, str]                      # pack id -> backend name (storage listing)
    index_names: list[str]
    index_packs: dict[str, set[str]] = field(default_factory=dict)  # index name -> pack ids
    locked_index_names: set[str] = field(default_factory=set)
    keep: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    repack: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def _load_all_indexes(repo) -> tuple[list[str], dict, dict, dict]:
    """Read every index object: (names, pack -> [(blob, entry)], blob -> canonical entry,
    name -> the pack ids it lists).

    Also makes `repo` read through exactly these indexes, so the mark phase sees what other
    processes wrote since `repo` was opened (its cached index may predate their backups).
    """
    names = repo.list_index_names()
    by_pack: dict[str, list[tuple[bytes, IndexEntry]]] = {}
    seen: set[tuple[bytes, IndexEntry]] = set()
    canonical: dict[bytes, IndexEntry] = {}
    merged = Index()
    index_packs: dict[str, set[str]] = {}
    for name in names:
        try:
            payload = repo.read_index_payload(name)
            entries = list(decode_index(payload, name))
        except EngineError as error:
            raise DataIntegrityError(f"prune refused: index {name} is damaged ({error.message}); "
                                 "run verify and repair first") from error
        merged.load(name, payload)
        index_packs[name] = {entry.pack_id for _, entry in entries}
        for blob_id, entry in entries:
            if (blob_id, entry) in seen:
                continue  # the same blob record listed by two index objects
            seen.add((blob_id, entry))
            by_pack.setdefault(entry.pack_id, []).append((blob_id, entry))
            canonical.setdefault(blob_id, entry)
    repo.replace_index(merged)
    return names, by_pack, canonical, index_packs


def referenced_blobs(repo, known: set[bytes] | dict) -> tuple[set[bytes], int]:
    """Every blob id reachable from any snapshot (trees and data), and the snapshot count.

    Raises `DataIntegrityError` when a snapshot or tree cannot be read or a referenced blob is not
    in `known`: prune must not guess what is in use.
    """
    referenced: set[bytes] = set()
    seen_trees: set[bytes] = set()
    snapshot_ids = repo.list_snapshot_ids()
    count = 0
    for snapshot_id in snapshot_ids:
        try:
            info = repo.load_snapshot(snapshot_id)
        except SnapshotNotFound:
            continue
        except EngineError as error:
            raise DataIntegrityError(f"prune refused: snapshot {snapshot_id} is unreadable "
                                     f"({error.message}); run verify first") from error
        count += 1

        def read(tree_id: bytes, snapshot_id=snapshot_id):
            if tree_id not in known:
                raise DataIntegrityError(f"prune refused: tree {tree_id.hex()} of snapshot "
                                         f"{snapshot_id} is not indexed; run verify first")
            try:
                return repo.read_tree(tree_id)
            except EngineError as error:
                raise DataIntegrityError(f"prune refused: tree {tree_id.hex()} of snapshot "
                                         f"{snapshot_id} is unreadable ({error.message})") from error

        for tree_id, entries in walk_trees(bytes.fromhex(info.tree), read, seen=seen_trees):
            referenced.add(tree_id)
            for entry in entries:
                if entry.type == "file":
                    for blob_id in entry.content:
                        if blob_id not in known:
                            raise DataIntegrityError(
                                f"prune refused: blob {blob_id.hex()} of snapshot "
                                f"{snapshot_id} is not indexed; run verify first")
                        referenced.add(blob_id)
    return referenced, count


def _plan(repo, threshold: float, result: PruneResult) -> _Plan:
    index_names, by_pack, canonical, index_packs = _load_all_indexes(repo)
    referenced, result.snapshots = referenced_blobs(repo, canonical)
    stored = repo.list_packs()
    plan = _Plan(referenced=referenced, canonical=canonical, by_pack=by_pack, stored=stored,
                 index_names=index_names, index_packs=index_packs)
    for blob_id in referenced:
        if canonical[blob_id].pack_id not in stored:
            raise DataIntegrityError(f"prune refused: pack {canonical[blob_id].pack_id} holding a "
                                 "referenced blob is missing; run verify first")
    for pack_id, entries in sorted(by_pack.items()):
        if pack_id not in stored:
            continue  # dangling index entries of unreferenced blobs: dropped with the index
        total = sum(entry.length for _, entry in entries)
        used = sum(entry.length for blob_id, entry in entries
                   if blob_id in referenced and canonical[blob_id] == entry)
        if used == 0:
            plan.delete.append(pack_id)
        elif used < threshold * total:
            plan.repack.append(pack_id)
        else:
            plan.keep.append(pack_id)
    plan.leftovers = sorted(set(stored) - set(by_pack))
    if repo.backend.object_lock_enabled():
        _keep_locked(repo, plan, result)
    return plan


def _keep_locked(repo, plan: _Plan, result: PruneResult) -> None:
    """Move what is locked out of the plan's deletions (see the module docstring)."""
    plan.locked_index_names = set(_locked_objects(repo, plan.index_names))
    pinned = set()  # packs a locked index lists: deleting them would make that index lie
    for name in plan.locked_index_names:
        pinned |= plan.index_packs.get(name, set())
    doomed = plan.delete + plan.repack + plan.leftovers
    locked = set(_locked_objects(repo, [plan.stored[p] for p in doomed if p not in pinned]))
    kept = {p for p in doomed if p in pinned or plan.stored[p] in locked}
    plan.keep = sorted(set(plan.keep) | (kept - set(plan.leftovers)))
    plan.delete = [p for p in plan.delete if p not in kept]
    plan.repack = [p for p in plan.repack if p not in kept]
    plan.leftovers = [p for p in plan.leftovers if p not in kept]
    result.locked_packs_kept = len(kept)
    result.locked_index_objects_kept = len(plan.locked_index_names)


def _repack(repo, plan: _Plan, progress: Callable | None, result: PruneResult
            ) -> dict[str, list[PackEntry]]:
    """Copy the referenced blobs of `plan.repack` into new packs; {new pack id: entries}."""
    pack_size = int(repo.config.get("pack_size", 16 * 1024 * 1024))
    builders = {BlobType.DATA: PackBuilder(), BlobType.TREE: PackBuilder()}
    written: dict[str, list[PackEntry]] = {}

    def flush(blob_type) -> None:
        builder = builders[blob_type]
        if not builder.entries:
            return
        pack_id, data, entries = builder.finish(repo.cipher)
        repo.backend.put(pack_name(pack_id), data)
        written[pack_id] = entries
        builders[blob_type] = PackBuilder()

    total = sum(repo.backend.size(plan.stored[p]) for p in plan.repack)
    done = 0
    for pack_id in plan.repack:
        data = memoryview(repo.backend.get(plan.stored[pack_id]))
        for blob_id, entry in plan.by_pack[pack_id]:
            if blob_id not in plan.referenced or plan.canonical[blob_id] != entry:
                continue
            sealed = data[entry.offset:entry.offset + entry.length]
            repo.open_blob(blob_id, entry, sealed)  # never copy damage into a new pack
            blob_type = BlobType.TREE if entry.blob_type == BlobType.TREE else BlobType.DATA
            builders[blob_type].add(blob_id, entry.blob_type, entry.compression, bytes(sealed),
                                    entry.raw_length)
            if builders[blob_type].size >= pack_size:
                flush(blob_type)
        done += len(data)
        if progress is not None:
            progress(done, total, f"repacked {plan.repack.index(pack_id) + 1}/"
                                  f"{len(plan.repack)} packs")
    for blob_type in builders:
        flush(blob_type)
    result.packs_written = len(written)
    return written


def _new_index(plan: _Plan, written: dict[str, list[PackEntry]]) -> list[dict]:
    """Index contents covering every referenced blob, split into objects of bounded size."""
    packs: dict[str, list[PackEntry]] = {}
    for pack_id in plan.keep:
        # Every blob of a kept pack stays indexed, referenced or not: the bytes are still
        # there, later backups may dedup against them, and the next prune must see the
        # pack's real usage to decide when it is worth repacking.
        packs[pack_id] = [PackEntry(blob_id, e.blob_type, e.compression, e.offset, e.length,
                                    e.raw_length) for blob_id, e in plan.by_pack[pack_id]]
    packs.update(written)
    objects, current, count = [], {}, 0
    for pack_id, entries in packs.items():
        if current and count + len(entries) > INDEX_ENTRIES_PER_OBJECT:
            objects.append(current)
            current, count = {}, 0
        current[pack_id] = entries
        count += len(entries)
    if current:
        objects.append(current)
    return objects


def _delete_all(repo, names: list[str]) -> None:
    """Delete objects on a few threads (one request each on S3; order does not matter
    within a step, only between steps). The first failure is raised after the rest ran."""
    if len(names) <= 1:
        for name in names:
            repo.backend.delete(name)
        return
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(repo.backend.delete, names):
            pass


def _clean_interrupted_uploads(repo, result: PruneResult, dry_run: bool, check,
                               min_age: float) -> None:
    backend = repo.backend
    list_temporary = getattr(backend, "list_temporary", None)
    if list_temporary is not None:
        for name in list(list_temporary(min_age)):
            result.temporary_files_removed += 1
            if not dry_run:
                check()
                backend.delete_temporary(name)
    list_uploads = getattr(backend, "list_incomplete_uploads", None)
    if list_uploads is not None:
        for key, upload_id in list(list_uploads(min_age)):
            result.incomplete_uploads_aborted += 1
            if not dry_run:
                check()
                backend.abort_upload(key, upload_id)


def prune_repository(repo, dry_run: bool = False, progress: Callable | None = None, *,
                     repack_threshold: float = DEFAULT_REPACK_THRESHOLD,
                     lock_wait: float = DEFAULT_LOCK_WAIT, stale_after: float | None = None,
                     leftover_min_age: float = DEFAULT_LEFTOVER_MIN_AGE) -> PruneResult:
    """Delete or repack data no snapshot references (see the module docstring).

    Temporary files and unfinished multipart uploads are removed only when older than
    `leftover_min_age` seconds: a younger one may be a put in progress (a lock being taken).

    Raises `RepositoryLocked` (transient) when a backup, restore or verify holds the
    repository and does not finish within `lock_wait` seconds (queued meanwhile: new backups
    stay out; 0 fails at once), and `DataIntegrityError` when the
    repository is damaged (prune refuses to run). A dry run writes and deletes nothing.
    """
    if not 0.0 <= repack_threshold <= 1.0:
        raise EngineError("repack_threshold must be between 0 and 1")
    options = {} if stale_after is None else {"stale_after": stale_after}
    # poll a few times within a short wait, at most once a second within a long one
    options["poll_interval"] = min(1.0, max(0.05, lock_wait / 5))
    with repository_lock(repo.backend, exclusive=True, holder="prune", wait=lock_wait,
                         **options) as held:
        result = PruneResult(dry_run=dry_run)
        plan = _plan(repo, repack_threshold, result)
        sizes = pack_sizes(repo, plan.stored)
        result.packs_before = len(plan.stored)
        result.packs_kept = len(plan.keep)
        result.packs_deleted = len(plan.delete)
        result.packs_repacked = len(plan.repack)
        result.leftover_packs_deleted = len(plan.leftovers)
        result.blobs_referenced = len(plan.referenced)
        result.blobs_removed = len(set(plan.canonical) - plan.referenced)
        doomed = plan.delete + plan.repack + plan.leftovers
        result.bytes_before = sum(sizes.values())
        result.bytes_freed = sum(sizes[pack_id] for pack_id in doomed)
        # Rewriting the index also merges the one-per-backup index objects into few, and
        # drops entries naming packs that no longer exist.
        # Locked index objects stay whatever happens, so they do not count towards merging.
        deletable_index_names = [name for name in plan.index_names
                                 if name not in plan.locked_index_names]
        rewrite_index = (bool(plan.delete or plan.repack) or len(deletable_index_names) > 1
                         or any(pack_id not in plan.stored for pack_id in plan.by_pack))
        if dry_run:
            result.index_objects_deleted = len(deletable_index_names) if rewrite_index else 0
            _clean_interrupted_uploads(repo, result, True, held.check, leftover_min_age)
            return result

        held.check()
        written = _repack(repo, plan, progress, result)                     # step 4
        result.bytes_freed -= sum(repo.backend.size(pack_name(p)) for p in written)
        if rewrite_index:
            held.check()
            new_names = set()
            for contents in _new_index(plan, written):                      # step 5
                new_names.add(write_index(repo.backend, repo.cipher, contents))
            result.index_objects_written = len(new_names)
            held.check()
            old_names = [name for name in deletable_index_names if name not in new_names]
            _delete_all(repo, old_names)                                    # step 6
            result.index_objects_deleted = len(old_names)
        held.check()
        _delete_all(repo, [plan.stored[pack_id] for pack_id in doomed])    # step 7
        _clean_interrupted_uploads(repo, result, False, held.check, leftover_min_age)
        repo.load_index(reload=True)
        if progress is not None:
            progress(1, 1, "prune complete")
        return result


#: The names `Repository.forget` / `Repository.prune` call.
