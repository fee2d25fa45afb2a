"""The process-wide manifest cache: listings stop re-reading manifests, yet deletion and
damage are still seen (docs/repository-format.md, "Manifest cache")."""

from __future__ import annotations

import pytest

from backups import engine
from backups.engine.errors import EngineError, SnapshotNotFound
from backups.engine.repository import forget_cached_manifests

from .helpers import KEY, new_repository


class CountingBackend:
    def __init__(self, inner):
        self.inner = inner
        self.manifest_reads = 0

    def get(self, name, offset=0, length=None):
        self.manifest_reads += name.startswith("snapshots/")
        return self.inner.get(name, offset, length)

    def __getattr__(self, attribute):
        return getattr(self.inner, attribute)


@pytest.fixture(autouse=True)
def _empty_cache():
    forget_cached_manifests()
    yield
    forget_cached_manifests()


@pytest.fixture
def repository_with_three_snapshots(tmp_path):
    repository = new_repository(tmp_path / "repo")
    for index in range(3):
        source = tmp_path / f"src-{index}"
        source.mkdir()
        (source / "file.txt").write_bytes(b"content %d" % index)
        repository.backup(str(source), source=f"volume:{index}")
    return tmp_path / "repo"


def open_counted(path):
    backend = CountingBackend(engine.LocalBackend(str(path)))
    return engine.Repository.open(backend, KEY), backend


def test_a_second_repository_object_lists_snapshots_without_reading_manifests(repository_with_three_snapshots):
    forget_cached_manifests()
    first, first_backend = open_counted(repository_with_three_snapshots)
    assert len(first.snapshots()) == 3 and first_backend.manifest_reads == 3
    second, second_backend = open_counted(repository_with_three_snapshots)
    found = second.snapshots(source="volume:1")
    assert [info.source for info in found] == ["volume:1"] and second_backend.manifest_reads == 0


def test_a_deleted_manifest_disappears_from_listings_and_lookups(repository_with_three_snapshots):
    repository, _backend = open_counted(repository_with_three_snapshots)
    [gone] = repository.snapshots(source="volume:2")
    repository.delete_snapshot(gone.id)
    assert {info.source for info in repository.snapshots()} == {"volume:0", "volume:1"}
    with pytest.raises(SnapshotNotFound):
        repository.load_snapshot(gone.id)


def test_a_damaged_manifest_is_still_seen_by_load_snapshot_and_verify(repository_with_three_snapshots):
    repository, _backend = open_counted(repository_with_three_snapshots)
    [damaged] = repository.snapshots(source="volume:0")  # now cached
    path = repository_with_three_snapshots / "snapshots" / damaged.id
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EngineError):
        repository.load_snapshot(damaged.id)
    assert damaged.id in repository.verify().broken_snapshots


def test_cached_snapshots_are_copies_the_caller_may_change(repository_with_three_snapshots):
    repository, _backend = open_counted(repository_with_three_snapshots)
    [info] = repository.snapshots(source="volume:0")
    info.tags.append("changed by the caller")
    [again] = repository.snapshots(source="volume:0")
    assert "changed by the caller" not in again.tags
