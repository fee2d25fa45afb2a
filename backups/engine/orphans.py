"""Objects sealed with an orphan key, and their removal (`repair-orphans` in the CLI).

An orphan key is a key object that unwraps with the repository's secret but does not open
the config (`Repository.open` skips it). Before initialisation was made atomic, two
processes initialising one empty location at once could each write a key object and a
config; the one whose config was overwritten kept backing up with its own master key. Its
index objects and snapshot manifests are intact but sealed with that orphan key, so the
repository's key cannot read them and every reader of the index fails on them.

They cannot be re-sealed: blob ids are keyed hashes under the orphan key, and the packs
are encrypted with it. Recovery is therefore: back up the affected volumes again (their
live data is what those snapshots held), then remove the orphan-sealed index objects,
manifests and orphan key objects here; the next prune deletes their packs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import EngineError
from .format import ObjectType
from .snapshot import decode_snapshot


@dataclass
class OrphanReport:
    """What `find_orphan_objects` found (and `remove_orphan_objects` removed)."""

    orphan_keys: list[str] = field(default_factory=list)
    index_objects: list[str] = field(default_factory=list)
    #: [{id, source, time, key}] of manifests sealed with an orphan key.
    snapshots: list[dict] = field(default_factory=list)
    removed: bool = False

    def to_json(self) -> dict:
        return {"orphan_keys": self.orphan_keys, "index_objects": self.index_objects,
                "snapshots": self.snapshots, "removed": self.removed}


def _sealed_by(repo, name: str, object_type: int):
    """(key name, plaintext) when an orphan key opens object `name`, else None."""
    data = repo.backend.get(name)
    try:
        repo.cipher.open_envelope(data, object_type, name)
        return None  # the repository's own key opens it
    except EngineError:
        pass
    for key_name, cipher in sorted(repo.orphan_ciphers.items()):
        try:
            return key_name, cipher.open_envelope(data, object_type, name)
        except EngineError:
            continue
    return None


def find_orphan_objects(repo) -> OrphanReport:
    """Index objects and manifests the repository's key cannot read but an orphan key can."""
    report = OrphanReport(orphan_keys=sorted(repo.orphan_ciphers))
    if not repo.orphan_ciphers:
        return report
    for name in repo.list_index_names():
        if _sealed_by(repo, name, ObjectType.INDEX) is not None:
            report.index_objects.append(name)
    for snapshot_id in repo.list_snapshot_ids():
        found = _sealed_by(repo, f"snapshots/{snapshot_id}", ObjectType.SNAPSHOT)
        if found is None:
            continue
        key_name, plain = found
        info = decode_snapshot(snapshot_id, plain)
        report.snapshots.append({"id": snapshot_id, "source": info.source,
                                 "time": info.time.isoformat(), "key": key_name})
    return report


def remove_orphan_objects(repo, *, dry_run: bool = False) -> OrphanReport:
    """Delete what `find_orphan_objects` finds, and the orphan key objects, under the
    exclusive lock. Their packs become unreferenced: the next prune removes them."""
    with repo.lock(exclusive=True, holder="repair-orphans"):
        report = find_orphan_objects(repo)
        if dry_run or not report.orphan_keys:
            return report
        repo.delete_objects(report.index_objects)
        repo.delete_objects(f"snapshots/{snapshot['id']}" for snapshot in report.snapshots)
        repo.delete_objects(report.orphan_keys)
        repo.orphan_ciphers = {}
        report.removed = True
        return report
