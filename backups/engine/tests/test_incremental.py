"""Incremental backups reuse the parent's chunk lists; changes while reading are warnings;
cancel leaves no snapshot; progress is reported."""

from __future__ import annotations

import os

import pytest

from backups import engine
from backups.engine import archiver
from backups.engine.tests.helpers import KEY, new_repository, snapshot_tree


def _source(tmp_path):
    source = tmp_path / "source"
    (source / "dir").mkdir(parents=True)
    (source / "dir" / "big").write_bytes(os.urandom(2 * 1024 * 1024))
    for number in range(20):
        (source / f"small-{number}").write_bytes(os.urandom(1000))
    return source


def test_unchanged_files_are_not_read_again(tmp_path, monkeypatch, any_backend):
    source = _source(tmp_path)
    repo = engine.Repository.init(any_backend, KEY)
    first = repo.backup(source, source="volume:1")
    assert first.stats["files_read"] == 21

    (source / "small-3").write_bytes(b"changed")
    opened = []
    real_open = os.open

    def counting_open(path, flags, *args, **kwargs):
        opened.append(os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(archiver.os, "open", counting_open)
    second = repo.backup(source, source="volume:1")
    monkeypatch.undo()

    assert second.snapshot.parent == first.snapshot_id
    assert [os.path.basename(path) for path in opened if path.startswith(str(source))] \
        == ["small-3"]
    assert second.stats["files_read"] == 1 and second.stats["files_reused"] == 20
    assert second.stats["bytes_read"] == len(b"changed")
    repo.restore(second.snapshot_id, tmp_path / "target")
    assert snapshot_tree(tmp_path / "target") == snapshot_tree(source)


def test_same_size_same_mtime_rewrite_is_still_detected_by_ctime(tmp_path):
    source = _source(tmp_path)
    repo = new_repository(tmp_path / "repo")
    repo.backup(source)
    victim = source / "small-5"
    before = os.stat(victim)
    victim.write_bytes(b"X" * 1000)  # same size
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime, new ctime
    result = repo.backup(source)
    assert result.stats["files_read"] == 1
    assert b"".join(repo.open_file("latest", "small-5")) == b"X" * 1000


def test_parent_none_reads_everything(tmp_path):
    source = _source(tmp_path)
    repo = new_repository(tmp_path / "repo")
    repo.backup(source)
    assert repo.backup(source, parent=None).stats["files_read"] == 21


def test_file_that_shrinks_or_vanishes_while_reading_is_a_warning(tmp_path, monkeypatch):
    source = tmp_path / "source"
    source.mkdir()
    (source / "a-growing-log").write_bytes(os.urandom(3 * 1024 * 1024))
    (source / "z-vanishes").write_bytes(b"soon gone")
    calls = []

    def progress(done, total, message):
        if not calls:  # first chunk of the big file: it shrinks under the reader
            os.truncate(source / "a-growing-log", 1000)
        calls.append(done)

    real_open = os.open

    def vanishing_open(path, flags, *args, **kwargs):
        # Deleted between the directory listing and the open: the race a live volume has.
        if os.fsdecode(path).endswith("z-vanishes"):
            os.unlink(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(archiver.os, "open", vanishing_open)
    repo = new_repository(tmp_path / "repo")
    result = repo.backup(source, progress=progress)
    monkeypatch.undo()
    assert any("a-growing-log" in w and "changed" in w for w in result.warnings)
    assert any("z-vanishes" in w and "vanished" in w for w in result.warnings)
    assert result.snapshot.stats["warnings"] == len(result.warnings)
    assert [entry.name for entry in repo.list_dir("latest")] == ["a-growing-log"]
    assert calls and calls[-1] >= 1000


def test_cancel_leaves_no_snapshot_and_next_backup_works(tmp_path):
    source = _source(tmp_path)
    repo = new_repository(tmp_path / "repo")
    with pytest.raises(engine.Cancelled):
        repo.backup(source, cancel=lambda: True)
    assert repo.snapshots() == []
    result = repo.backup(source, cancel=lambda: False)
    assert [info.id for info in repo.snapshots()] == [result.snapshot_id]


def test_missing_source_is_a_source_error(tmp_path):
    repo = new_repository(tmp_path / "repo")
    with pytest.raises(engine.SourceError):
        repo.backup(tmp_path / "missing")


def test_snapshot_listing_filters_and_latest(tmp_path):
    source = _source(tmp_path)
    repo = new_repository(tmp_path / "repo")
    one = repo.backup(source, source="volume:1", tags=["volume:1", "manual"])
    two = repo.backup(source, source="volume:2", tags=["volume:2"])
    assert [s.id for s in repo.snapshots(source="volume:1")] == [one.snapshot_id]
    assert [s.id for s in repo.snapshots(tags=["manual"])] == [one.snapshot_id]
    assert repo.resolve_snapshot("latest").id == two.snapshot_id
    assert repo.resolve_snapshot(one.snapshot_id[:10]).id == one.snapshot_id
    with pytest.raises(engine.SnapshotNotFound):
        repo.resolve_snapshot("ffff" if not one.snapshot_id.startswith("ffff") else "eeee")


def test_unchanged_tree_reuses_the_parents_tree_ids(tmp_path):
    source = _source(tmp_path)
    repo = new_repository(tmp_path / "repo")
    first = repo.backup(source)
    second = repo.backup(source)
    assert second.snapshot.tree == first.snapshot.tree
    assert second.stats["blobs_new"] == 0 and second.stats["files_read"] == 0
    (source / "dir" / "new").write_text("new")
    third = repo.backup(source)
    assert third.snapshot.tree != first.snapshot.tree
    assert [e.name for e in repo.list_dir(third.snapshot_id, "dir")] == ["big", "new"]
