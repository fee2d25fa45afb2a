"""verify_repository: structure and data checks, damage reported with the snapshots it breaks.

Runs against a local directory and against S3 (a real moto_server over HTTP).
"""

from __future__ import annotations

import os
import random

import pytest

from backups import engine
from backups.engine.format import BlobType
from backups.engine.packer import pack_name
from backups.engine.tests.helpers import LOCAL_ONLY, write_files
from backups.engine.verify import VerifyReport, verify_repository

pytestmark = pytest.mark.engine

KEY = "22" * 32  # 64 hex digits: the fast HKDF path


@pytest.fixture
def repo(any_backend):
    return engine.Repository.init(any_backend, KEY)


def packs_of(repo) -> set[str]:
    return set(repo.list_packs())


def data_pack_holding(repo, blob_ids) -> str:
    index = repo.load_index(reload=True)
    packs = {index.get(blob_id).pack_id for blob_id in blob_ids}
    assert len(packs) == 1
    return packs.pop()


def file_blobs(repo, snapshot_id, path) -> list[bytes]:
    directory, _, name = path.rpartition("/")
    entries = repo.list_dir(snapshot_id, directory or "/")
    return next(entry.content for entry in entries if entry.name == name)


def flip_byte(any_backend, name, offset) -> None:
    data = bytearray(any_backend.get(name))
    data[offset] ^= 0x01
    any_backend.put(name, bytes(data))


@pytest.fixture
def two_snapshots(repo, tmp_path):
    """Snapshot 1 holds a.txt; snapshot 2 adds b.bin, whose data sits in a pack of its own."""
    source = tmp_path / "source"
    write_files(source, {"a.txt": b"alpha " * 1000, "dir/c.txt": b"gamma"})
    first = repo.backup(source, source="vol").snapshot_id
    write_files(source, {"b.bin": os.urandom(200_000)})
    second = repo.backup(source, source="vol").snapshot_id
    b_pack = data_pack_holding(repo, file_blobs(repo, second, "b.bin"))
    return first, second, b_pack


def test_a_healthy_repository_verifies(repo, two_snapshots):
    report = verify_repository(repo, read_data_percent=100)
    assert isinstance(report, VerifyReport)
    assert report.ok, report.errors
    assert report.errors == [] and report.damaged_packs == [] and report.broken_snapshots == []
    assert report.snapshots == 2 and report.trees >= 3 and report.blobs >= 5
    assert report.packs_read == report.packs == len(packs_of(repo))
    assert report.bytes_read > 200_000


@LOCAL_ONLY
def test_repository_verify_delegates_here(repo, two_snapshots):
    report = repo.verify(read_data_percent=0)
    assert report.ok and report.packs_read == 0


def test_a_flipped_byte_is_caught_and_names_the_broken_snapshot(repo, any_backend, two_snapshots):
    first, second, b_pack = two_snapshots
    entry = repo.index.get(file_blobs(repo, second, "b.bin")[0])
    flip_byte(any_backend, pack_name(b_pack), entry.offset + 40)
    structural = verify_repository(repo, read_data_percent=0)
    assert structural.ok  # structure alone does not read data blobs
    report = verify_repository(repo, read_data_percent=100)
    assert not report.ok
    assert report.damaged_packs == [b_pack]
    assert report.broken_snapshots == [second]  # snapshot 1 never used b.bin
    assert any("authentication failed" in error for error in report.errors)
    assert any(second[:12] in error for error in report.errors)


def test_a_missing_pack_breaks_the_snapshots_that_use_it(repo, any_backend, two_snapshots):
    first, second, b_pack = two_snapshots
    any_backend.delete(pack_name(b_pack))
    report = verify_repository(repo)
    assert not report.ok
    assert report.damaged_packs == [b_pack]
    assert report.broken_snapshots == [second]
    assert any("missing" in error for error in report.errors)


def test_a_missing_tree_pack_breaks_every_snapshot_through_it(repo, any_backend, two_snapshots):
    first, second, _ = two_snapshots
    # dir/ is the same in both snapshots: its tree blob is shared
    subtree = next(e.subtree for e in repo.list_dir(first, "/") if e.name == "dir")
    tree_pack = data_pack_holding(repo, [subtree])
    any_backend.delete(pack_name(tree_pack))
    report = verify_repository(repo)
    assert not report.ok
    assert report.broken_snapshots == sorted([first, second])


def test_a_truncated_pack_is_damage(repo, any_backend, two_snapshots):
    _, second, b_pack = two_snapshots
    name = pack_name(b_pack)
    any_backend.put(name, any_backend.get(name)[:1000])
    report = verify_repository(repo)
    assert not report.ok and b_pack in report.damaged_packs
    assert second in report.broken_snapshots
    assert any("truncated" in error for error in report.errors)


def test_a_damaged_index_object_is_reported(repo, any_backend, two_snapshots):
    name = repo.list_index_names()[0]
    flip_byte(any_backend, name, 20)
    report = verify_repository(repo)
    assert not report.ok
    assert any(name in error and "damaged" in error for error in report.errors)


def test_an_unreadable_snapshot_manifest_is_reported(repo, any_backend, two_snapshots):
    first, _, _ = two_snapshots
    flip_byte(any_backend, f"snapshots/{first}", 30)
    report = verify_repository(repo)
    assert not report.ok and report.broken_snapshots == [first]


@LOCAL_ONLY
def test_read_data_percent_reads_that_share_of_the_packs(repo, tmp_path):
    source = tmp_path / "many"
    for number in range(6):  # every backup writes a data pack and a tree pack
        write_files(source, {f"file{number}": os.urandom(5000)})
        repo.backup(source, source="vol")
    total = len(packs_of(repo))
    assert total >= 12
    assert verify_repository(repo, read_data_percent=0).packs_read == 0
    quarter = verify_repository(repo, read_data_percent=25, random=random.Random(7))
    assert quarter.ok and quarter.packs_read == -(-total * 25 // 100)
    assert verify_repository(repo, read_data_percent=0.01).packs_read == 1
    with pytest.raises(engine.EngineError):
        verify_repository(repo, read_data_percent=150)


@LOCAL_ONLY
def test_a_sample_finds_damage_only_in_packs_it_reads(repo, any_backend, tmp_path):
    source = tmp_path / "many"
    for number in range(4):
        write_files(source, {f"file{number}": os.urandom(5000)})
        repo.backup(source, source="vol")
    index = repo.load_index(reload=True)
    victim = sorted({e.pack_id for _, e in index.items() if e.blob_type == BlobType.DATA})[0]
    first_entry = next(e for _, e in index.items() if e.pack_id == victim)
    flip_byte(any_backend, pack_name(victim), first_entry.offset + 20)
    reports = [verify_repository(repo, read_data_percent=25, random=random.Random(seed))
               for seed in range(8)]
    caught = [report for report in reports if not report.ok]
    assert caught and len(caught) < len(reports)
    assert all(report.damaged_packs == [victim] for report in caught)


def test_leftover_packs_of_an_interrupted_backup_are_a_warning_not_damage(repo, two_snapshots):
    from backups.engine.packer import PackBuilder

    builder = PackBuilder()
    pack_id, data, _ = builder.finish(repo.cipher)
    repo.backend.put(pack_name(pack_id), data)
    report = verify_repository(repo, read_data_percent=100)
    assert report.ok and report.unreferenced_packs == 1
    assert any("prune removes them" in warning for warning in report.warnings)


@LOCAL_ONLY
def test_verify_reports_progress(repo, two_snapshots):
    calls = []
    verify_repository(repo, read_data_percent=100, progress=lambda *a: calls.append(a))
    assert calls and calls[-1][0] == calls[-1][1]


@pytest.mark.parametrize("where", ["header", "trailer"])
def test_damage_outside_the_blob_records_is_caught_too(repo, any_backend, two_snapshots, where):
    _, second, b_pack = two_snapshots
    name = pack_name(b_pack)
    offset = 1 if where == "header" else any_backend.size(name) - 10
    flip_byte(any_backend, name, offset)
    report = verify_repository(repo, read_data_percent=100)
    assert not report.ok and report.damaged_packs == [b_pack]
    assert report.broken_snapshots == []  # every blob still authenticates: data intact
