"""Verify: is every snapshot restorable, and (optionally) is the stored data intact?

`verify_repository(repo, read_data_percent, progress)` runs, in order:

1. Indexes: every `index/*` object authenticates and parses (each on its own, so one damaged
   index is reported instead of hiding the rest).
2. Packs: the storage listing is compared with the index. An indexed pack that is missing, or
   shorter than its last indexed blob, is damaged (and so is every blob in it that cannot be
   there). Packs in storage that no index names are leftovers of interrupted backups: a
   warning, not damage (prune removes them).
3. Structure: every snapshot manifest is read, and every tree reachable from it (each tree
   once for the whole repository): each tree must be indexed and readable, each file's blobs
   must be indexed.
4. Data (when `read_data_percent` > 0): all packs, or a random sample of that percentage
   (or the packs a caller's `select` picks, see `pack_selection`), are read whole. Its header must be valid, its trailer must authenticate and agree with the
   index, and every indexed blob in it is authenticated (AES-GCM: any flipped byte),
   decompressed and checked against its keyed id (`Repository.open_blob`).
5. Blame: only when something is damaged, snapshots are walked again to name each snapshot
   that references a damaged blob or an unreadable tree (`broken_snapshots`).

The report lists problems as sentences in `errors`; `ok` is True only when there are none.
Verification never modifies the repository. It holds a shared lock so that prune (exclusive)
cannot delete packs under it, which would show up as false "missing pack" damage.
"""

from __future__ import annotations

import math
import os
import random as random_module
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from .errors import BackendUnavailable, EngineError
from .format import HEADER_SIZE, ObjectType, check_header
from .index import Index, IndexEntry, decode_index
from .packer import TRAILER_LENGTH, parse_trailer
from .walk import walk_trees

#: Packs read in parallel in the data check. Decryption, zstd and SHA-256 release the GIL,
#: so two threads per core keep both the storage and the CPU busy; memory is bounded by
#: this many whole packs (16-64 MiB each).
DATA_CHECK_THREADS = max(2, min(4, (os.cpu_count() or 2)))


@dataclass
class VerifyReport:
    """What `verify_repository` found. `ok` is False when `errors` is not empty."""

    ok: bool = True
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    damaged_packs: list[str] = field(default_factory=list)
    broken_snapshots: list[str] = field(default_factory=list)
    snapshots: int = 0
    trees: int = 0
    blobs: int = 0
    index_objects: int = 0
    packs: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    blobs_read: int = 0
    unreferenced_packs: int = 0
    read_data_percent: float = 0.0
    #: Ids of the packs the data check read (damaged ones included); left out of `to_json`
    #: because a large repository has tens of thousands of packs.
    read_pack_ids: list[str] = field(default_factory=list, repr=False)
    #: {pack id: bytes in storage} of every indexed pack present in storage (what `select`
    #: was offered), so a caller can keep sizes without listing storage again; left out of
    #: `to_json` for the same reason as `read_pack_ids`.
    pack_sizes: dict[str, int] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        data = asdict(self)
        del data["read_pack_ids"], data["pack_sizes"]
        return data


class _PackIndex:
    """pack id -> [(blob id, entry)] from every index object, each read independently."""

    def __init__(self) -> None:
        self.by_pack: dict[str, list[tuple[bytes, IndexEntry]]] = {}
        self.blobs: set[bytes] = set()


def _load_indexes(repo, report: VerifyReport) -> _PackIndex:
    packs = _PackIndex()
    names = repo.list_index_names()
    report.index_objects = len(names)
    merged = Index()
    seen: set[tuple[bytes, IndexEntry]] = set()
    for name in names:
        try:
            payload = repo.read_index_payload(name)
            entries = list(decode_index(payload, name))
        except BackendUnavailable:
            raise
        except EngineError as error:
            report.errors.append(_orphan_message(repo, name, ObjectType.INDEX)
                                 or f"index {name} is damaged: {error.message}")
            continue
        merged.load(name, payload)
        for blob_id, entry in entries:
            if (blob_id, entry) in seen:
                continue  # the same record in two index objects (an interrupted prune, or a
                # locked backup re-listing packs it extended): one blob, read once
            seen.add((blob_id, entry))
            packs.by_pack.setdefault(entry.pack_id, []).append((blob_id, entry))
            packs.blobs.add(blob_id)
    repo.replace_index(merged)
    return packs


def _orphan_message(repo, name: str, object_type: int) -> str | None:
    """The error for an object sealed with an orphan key (see `Repository.open`), or None.

    Such objects come from a process that lost a concurrent initialisation of the
    repository under an older version and kept using its own master key: they are intact,
    but this repository's key cannot read them. docs/runbook.md says what to do.
    """
    for key_name, cipher in sorted(repo.orphan_ciphers.items()):
        try:
            cipher.open_envelope(repo.backend.get(name), object_type, name)
        except EngineError:
            continue
        return (f"{name} is sealed with key {key_name}, which does not open this "
                "repository's config (written by a process that lost a concurrent "
                "initialisation; see the runbook, 'Objects sealed with an orphan key')")
    return None


def pack_sizes(repo, names: dict[str, str]) -> dict[str, int]:
    """Sizes of the given packs (parallel: on S3 each is a HEAD request)."""
    def size_of(item):
        pack_id, name = item
        return pack_id, repo.backend.size(name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(size_of, names.items()))


def _check_packs(repo, packs: _PackIndex, report: VerifyReport, damaged_blobs: set[bytes],
                 damaged_packs: set[str]) -> dict[str, str]:
    stored = repo.list_packs()
    report.packs = len(packs.by_pack)
    unreferenced = set(stored) - set(packs.by_pack)
    report.unreferenced_packs = len(unreferenced)
    if unreferenced:
        report.warnings.append(
            f"{len(unreferenced)} pack(s) are in no index (left by interrupted backups); "
            "prune removes them")
    present = {pack_id: stored[pack_id] for pack_id in packs.by_pack if pack_id in stored}
    for pack_id in sorted(set(packs.by_pack) - set(stored)):
        report.errors.append(f"pack {pack_id} is missing from storage "
                             f"({len(packs.by_pack[pack_id])} blobs lost)")
        damaged_packs.add(pack_id)
        damaged_blobs.update(blob_id for blob_id, _ in packs.by_pack[pack_id])
    report.pack_sizes = pack_sizes(repo, present)
    for pack_id, size in report.pack_sizes.items():
        entries = packs.by_pack[pack_id]
        needed = max(entry.offset + entry.length for _, entry in entries) + TRAILER_LENGTH.size
        if size < needed:
            report.errors.append(f"pack {pack_id} is truncated: {size} bytes, its index needs "
                                 f"at least {needed}")
            damaged_packs.add(pack_id)
            damaged_blobs.update(blob_id for blob_id, entry in entries
                                 if entry.offset + entry.length > size - TRAILER_LENGTH.size)
    return present


def _check_structure(repo, packs: _PackIndex, report: VerifyReport,
                     bad_trees: set[bytes], missing_blobs: set[bytes]) -> list:
    """Read every manifest and reachable tree once; returns the readable snapshots."""
    snapshots = []
    for snapshot_id in repo.list_snapshot_ids():
        try:
            snapshots.append(repo.load_snapshot(snapshot_id))
        except BackendUnavailable:
            raise
        except EngineError as error:
            name = f"snapshots/{snapshot_id}"
            report.errors.append(_orphan_message(repo, name, ObjectType.SNAPSHOT)
                                 or f"snapshot {snapshot_id} is unreadable: {error.message}")
            report.broken_snapshots.append(snapshot_id)
    report.snapshots = len(snapshots)

    def read(tree_id: bytes):
        if tree_id not in packs.blobs:
            report.errors.append(f"tree {tree_id.hex()} is not in any index")
            bad_trees.add(tree_id)
            return None
        try:
            return repo.read_tree(tree_id)
        except BackendUnavailable:
            raise
        except EngineError as error:
            report.errors.append(f"tree {tree_id.hex()} is unreadable: {error.message}")
            bad_trees.add(tree_id)
            return None

    seen_trees: set[bytes] = set()
    referenced: set[bytes] = set()
    for info in snapshots:
        for tree_id, entries in walk_trees(bytes.fromhex(info.tree), read, seen=seen_trees):
            referenced.add(tree_id)
            for entry in entries or ():
                if entry.type == "file":
                    for blob_id in entry.content:
                        referenced.add(blob_id)
                        if blob_id not in packs.blobs and blob_id not in missing_blobs:
                            missing_blobs.add(blob_id)
                            report.errors.append(f"data blob {blob_id.hex()} (in "
                                                 f"{entry.name!r}) is not in any index")
    report.trees = len(seen_trees)
    report.blobs = len(referenced)
    return snapshots


def _choose_packs(pack_ids: Iterable[str], percent: float,
                  random: random_module.Random) -> list[str]:
    ordered = sorted(pack_ids)
    if percent >= 100.0:
        return ordered
    if percent <= 0.0 or not ordered:
        return []
    count = max(1, math.ceil(len(ordered) * percent / 100.0))
    return sorted(random.sample(ordered, count))


def _read_pack(repo, pack_id: str, name: str, entries: list[tuple[bytes, IndexEntry]]):
    """Check one pack's bytes; returns (size, blobs checked, problems, damaged blob ids)."""
    data = repo.backend.get(name)
    problems, damaged = [], set()
    view = memoryview(data)
    # Every byte of a pack is covered without hashing the whole object: the header is
    # checked here, each blob record is authenticated by AES-GCM below, the trailer by its
    # envelope, and the records tile the pack between them. A SHA-256 of the pack would
    # add ~20 % CPU to `--read-data` and find nothing these checks miss.
    try:
        check_header(view[:HEADER_SIZE], ObjectType.PACK, name)
    except EngineError as error:
        problems.append(f"pack {pack_id}: {error.message}")
    try:
        (trailer_length,) = TRAILER_LENGTH.unpack_from(view, len(view) - TRAILER_LENGTH.size)
        start = len(view) - TRAILER_LENGTH.size - trailer_length
        if start < 0:
            raise EngineError("trailer length out of range")
        trailer = parse_trailer(repo.cipher, view[start:len(view) - TRAILER_LENGTH.size],
                                len(view), name)
        listed = {entry.blob_id: (entry.offset, entry.length) for entry in trailer}
        for blob_id, entry in entries:
            if listed.get(blob_id) != (entry.offset, entry.length):
                problems.append(f"pack {pack_id}: blob {blob_id.hex()} is indexed at a place "
                                "its pack trailer does not list")
                break
    except Exception as error:  # struct.error or an EngineError: the trailer is unusable
        message = getattr(error, "message", None) or type(error).__name__
        problems.append(f"pack {pack_id}: trailer is damaged ({message})")
    checked = 0
    for blob_id, entry in entries:
        checked += 1
        try:
            repo.open_blob(blob_id, entry, view[entry.offset:entry.offset + entry.length])
        except EngineError as error:
            damaged.add(blob_id)
            problems.append(f"pack {pack_id}: {error.message}")
    return len(data), checked, problems, damaged


def _check_data(repo, packs: _PackIndex, present: dict[str, str], report: VerifyReport,
                chosen: list[str], progress: Callable | None, damaged_blobs: set[bytes],
                damaged_packs: set[str], errors: list[str]) -> None:
    """Read `chosen` packs; problems go to `errors` (merged by the caller, in order)."""
    total = sum(max(e.offset + e.length for _, e in packs.by_pack[p]) for p in chosen)
    done = 0
    lock = threading.Lock()

    def check(pack_id):
        return pack_id, _read_pack(repo, pack_id, present[pack_id], packs.by_pack[pack_id])

    with ThreadPoolExecutor(max_workers=DATA_CHECK_THREADS) as pool:
        for pack_id, (size, checked, problems, damaged) in pool.map(check, chosen):
            with lock:
                report.packs_read += 1
                report.bytes_read += size
                report.blobs_read += checked
                done += size
                if problems:
                    damaged_packs.add(pack_id)
                    damaged_blobs.update(damaged)
                    errors.extend(problems[:20])
                    if len(problems) > 20:
                        errors.append(f"pack {pack_id}: {len(problems) - 20} more problems")
            if progress is not None:
                progress(done, max(total, done), f"read {report.packs_read}/{len(chosen)} packs")


def _blame(repo, snapshots, bad_trees: set[bytes], bad_blobs: set[bytes]) -> list[str]:
    """Ids of snapshots whose trees reach an unreadable tree or a damaged/missing blob."""
    broken_tree: dict[bytes, bool] = {}
    in_progress: set[bytes] = set()

    def tree_is_broken(root: bytes) -> bool:
        # iterative post-order walk with memo: shared subtrees are judged once
        stack = [(root, False)]
        while stack:
            tree_id, expanded = stack.pop()
            if tree_id in broken_tree:
                continue
            if not expanded and tree_id in in_progress:
                broken_tree[tree_id] = True  # a crafted cycle: no real tree contains itself
                continue
            if tree_id in bad_trees or tree_id in bad_blobs:
                broken_tree[tree_id] = True
                continue
            try:
                entries = repo.read_tree(tree_id)
            except EngineError:
                broken_tree[tree_id] = True
                continue
            subtrees = [e.subtree for e in entries if e.type == "dir" and e.subtree]
            if not expanded:
                in_progress.add(tree_id)
                stack.append((tree_id, True))
                stack.extend((sub, False) for sub in subtrees if sub not in broken_tree)
                continue
            broken_tree[tree_id] = (
                any(broken_tree.get(sub, True) for sub in subtrees)
                or any(blob in bad_blobs for e in entries if e.type == "file"
                       for blob in e.content))
        return broken_tree[root]

    return [info.id for info in snapshots if tree_is_broken(bytes.fromhex(info.tree))]


def verify_repository(repo, read_data_percent: float = 0.0, progress: Callable | None = None,
                      *, random: random_module.Random | None = None,
                      select: Callable[[list[str]], Iterable[str]] | None = None,
                      lock: bool = True) -> VerifyReport:
    """Check `repo` (see the module docstring). Never raises for damage: it is reported.

    `read_data_percent` in [0, 100]: 0 checks structure only, 100 reads every pack.
    `select`, when given, replaces the random sample: it gets the ids of the indexed packs
    present in storage and answers those to read (for example
    `pack_selection.unverified_first`); ids it invents are ignored. `report.read_pack_ids`
    names the packs read either way.
    Storage outages (`BackendUnavailable` after retries) and a held exclusive lock
    (`RepositoryLocked`) do raise: they say nothing about the data.
    """
    if not 0.0 <= float(read_data_percent) <= 100.0:
        raise EngineError("read_data_percent must be between 0 and 100")
    if lock:
        from .locking import repository_lock

        with repository_lock(repo.backend, exclusive=False, holder="verify"):
            return verify_repository(repo, read_data_percent, progress, random=random,
                                     select=select, lock=False)
    report = VerifyReport(read_data_percent=float(read_data_percent))
    random = random or random_module.Random()
    damaged_blobs: set[bytes] = set()
    damaged_packs: set[str] = set()
    bad_trees: set[bytes] = set()
    missing_blobs: set[bytes] = set()
    # A fresh view of the indexes: other processes may have written since `repo` was opened.
    packs = _load_indexes(repo, report)
    present = _check_packs(repo, packs, report, damaged_blobs, damaged_packs)
    # The data check (threads, mostly outside the GIL: SHA-256, AES-GCM, zstd) runs while
    # this thread walks the trees (mostly Python: JSON and validation), so on two cores the
    # structure pass costs almost no extra time.
    if select is not None:
        chosen = sorted(set(select(sorted(present))) & set(present))
    else:
        chosen = _choose_packs(present, float(read_data_percent), random)
    report.read_pack_ids = list(chosen)
    data_errors: list[str] = []
    data_failure: list[BaseException] = []

    def data_check() -> None:
        try:
            _check_data(repo, packs, present, report, chosen, progress, damaged_blobs,
                        damaged_packs, data_errors)
        except BaseException as error:  # re-raised in the caller's thread below
            data_failure.append(error)

    data_thread = threading.Thread(target=data_check, name="verify-data", daemon=True)
    if chosen:
        data_thread.start()
    try:
        snapshots = _check_structure(repo, packs, report, bad_trees, missing_blobs)
    finally:
        if chosen:
            data_thread.join()
    if data_failure:
        raise data_failure[0]
    report.errors.extend(data_errors)
    bad_blobs = damaged_blobs | missing_blobs
    if bad_trees or bad_blobs:
        report.broken_snapshots.extend(_blame(repo, snapshots, bad_trees, bad_blobs))
    report.damaged_packs = sorted(damaged_packs)
    report.broken_snapshots = sorted(set(report.broken_snapshots))
    report.ok = not report.errors
    if report.broken_snapshots:
        report.errors.append(f"{len(report.broken_snapshots)} snapshot(s) cannot be fully "
                             f"restored: {', '.join(s[:12] for s in report.broken_snapshots)}")
    return report


#: The name `Repository.verify` calls.
__all__ = ["VerifyReport", "verify_repository"]
