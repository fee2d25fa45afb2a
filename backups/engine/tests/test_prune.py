"""forget_snapshots and prune_repository, on a local directory and on S3 (moto_server)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time

import pytest

from backups import engine
from backups.engine.errors import DataIntegrityError, RepositoryLocked
from backups.engine.locking import LockInfo, encode_lock, process_namespace, repository_lock
from backups.engine.packer import PackBuilder, pack_name
from backups.engine.prune import ForgetResult, PruneResult, forget_snapshots, prune_repository
from backups.engine.retention import RetentionPolicy
from backups.engine.tests.helpers import LOCAL_ONLY, write_files
from backups.engine.verify import verify_repository

pytestmark = pytest.mark.engine

KEY = "33" * 32


@pytest.fixture
def repo(any_backend):
    return engine.Repository.init(any_backend, KEY)


def all_objects(any_backend) -> dict[str, int]:
    return {name: any_backend.size(name) for name in any_backend.list("")}


def tree_contents(root) -> dict[str, bytes]:
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = open(path, "rb").read()
    return found


@pytest.fixture
def history(repo, tmp_path):
    """Three snapshots of one source; the first alone holds a big file that is then deleted.

    Snapshot 1: keep.txt (small) + big.bin (large) in one data pack.
    Snapshot 2: keep.txt only, so snapshot 1's data pack becomes mostly unused once 1 goes.
    Snapshot 3: keep.txt + new.txt.
    """
    source = tmp_path / "source"
    write_files(source, {"keep.txt": os.urandom(20_000), "big.bin": os.urandom(400_000),
                         "dir/same.txt": b"same in every snapshot"})
    first = repo.backup(source, source="vol").snapshot_id
    (source / "big.bin").unlink()
    second = repo.backup(source, source="vol").snapshot_id
    write_files(source, {"new.txt": os.urandom(30_000)})
    third = repo.backup(source, source="vol").snapshot_id
    return source, [first, second, third]


# --- forget --------------------------------------------------------------------------------
@LOCAL_ONLY
def test_forget_applies_retention_per_source(repo, tmp_path):
    for source_name in ("vol-a", "vol-b"):
        source = tmp_path / source_name
        for number in range(3):
            write_files(source, {"f": str(number).encode()})
            repo.backup(source, source=source_name)
    result = forget_snapshots(repo, RetentionPolicy(keep_last=2))
    assert isinstance(result, ForgetResult)
    assert len(result.keep) == 4 and len(result.remove) == 2
    remaining = repo.snapshots()
    assert sorted(info.source for info in remaining) == ["vol-a", "vol-a", "vol-b", "vol-b"]
    assert {info.id for info in remaining} == set(result.keep)


@LOCAL_ONLY
def test_forget_of_one_source_leaves_others_alone(repo, tmp_path):
    for source_name in ("vol-a", "vol-b"):
        source = tmp_path / source_name
        for number in range(3):
            write_files(source, {"f": str(number).encode()})
            repo.backup(source, source=source_name)
    result = repo.forget({"keep_last": 1}, source="vol-a")
    assert len(result.remove) == 2
    assert len(repo.snapshots(source="vol-a")) == 1
    assert len(repo.snapshots(source="vol-b")) == 3


def test_forget_dry_run_deletes_nothing(repo, history):
    _, snapshots = history
    result = forget_snapshots(repo, RetentionPolicy(keep_last=1), dry_run=True)
    assert result.dry_run and result.remove == [snapshots[1], snapshots[0]]
    assert len(repo.snapshots()) == 3


@LOCAL_ONLY
def test_forget_uses_the_injected_clock_for_keep_within_from_now(repo, history):
    _, snapshots = history
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)
    result = forget_snapshots(repo, RetentionPolicy(keep_last=1, keep_within="7d"), now=later)
    # keep_within counts back from the newest snapshot, so all three (seconds apart) stay
    assert result.remove == [] and len(result.keep) == 3


# --- prune ---------------------------------------------------------------------------------
def test_prune_removes_only_unreferenced_data_and_restores_stay_identical(repo, any_backend,
                                                                          history, tmp_path):
    source, (first, second, third) = history
    before = tmp_path / "before"
    repo.restore(third, before)
    size_before = sum(all_objects(any_backend).values())

    forget_snapshots(repo, RetentionPolicy(keep_last=2))  # drops snapshot 1 (big.bin)
    result = prune_repository(repo)
    assert isinstance(result, PruneResult)
    assert result.packs_repacked >= 1  # snapshot 1's pack: keep.txt used, big.bin not
    assert result.bytes_freed > 300_000
    assert sum(all_objects(any_backend).values()) < size_before - 300_000
    assert len(repo.list_index_names()) == 1  # indexes merged into one

    fresh = engine.Repository.open(any_backend, KEY)  # as another process would
    after = tmp_path / "after"
    fresh.restore(third, after)
    assert tree_contents(after) == tree_contents(before) == tree_contents(source)
    fresh.restore(second, tmp_path / "second")
    assert "keep.txt" in tree_contents(tmp_path / "second")
    report = verify_repository(fresh, read_data_percent=100)
    assert report.ok, report.errors
    assert report.unreferenced_packs == 0


@LOCAL_ONLY
def test_prune_with_nothing_to_do_keeps_everything(repo, any_backend, history):
    prune_repository(repo)  # merges the per-backup indexes
    objects = all_objects(any_backend)
    result = prune_repository(repo)
    assert result.packs_deleted == result.packs_repacked == 0 and result.bytes_freed == 0
    assert all_objects(any_backend) == objects


def test_prune_dry_run_deletes_nothing(repo, any_backend, history):
    forget_snapshots(repo, RetentionPolicy(keep_last=1))
    objects = all_objects(any_backend)
    result = prune_repository(repo, dry_run=True)
    assert result.dry_run
    assert result.packs_deleted + result.packs_repacked >= 1 and result.bytes_freed > 0
    assert all_objects(any_backend) == objects


def test_prune_refuses_while_a_backup_holds_a_shared_lock(repo, any_backend, history):
    forget_snapshots(repo, RetentionPolicy(keep_last=1))
    objects = all_objects(any_backend)
    with repository_lock(any_backend, exclusive=False, holder="backup of vol"):
        started = time.monotonic()
        with pytest.raises(RepositoryLocked) as caught:
            prune_repository(repo, lock_wait=0.3)
        assert time.monotonic() - started < 10
    assert caught.value.transient and "backup of vol" in caught.value.message
    after = all_objects(any_backend)
    assert {name for name in after if not name.startswith("locks/")} == \
        {name for name in objects if not name.startswith("locks/")}
    prune_repository(repo)  # once the backup is done, prune goes ahead


def test_a_backup_cannot_start_while_prune_holds_the_repository(repo, any_backend, tmp_path):
    source = tmp_path / "s"
    write_files(source, {"f": b"x"})
    with repository_lock(any_backend, exclusive=True, holder="prune"):
        with pytest.raises(RepositoryLocked):
            repo.backup(source, source="vol")


def _dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    return int(finished.stdout)


def test_crash_mid_backup_leaves_leftovers_that_verify_tolerates_and_prune_removes(
        repo, any_backend, history, tmp_path):
    _, snapshots = history
    objects = all_objects(any_backend)
    # What a backup killed before its index and manifest leaves behind: packs in no index,
    # its lock (its process is gone), and an interrupted upload.
    leftovers = []
    for payload in (b"x" * 1000, b"y" * 2000):
        builder = PackBuilder()
        from backups.engine.packer import blob_associated_data

        blob_id = repo.cipher.blob_id(payload)
        builder.add(blob_id, 1, 0, repo.cipher.seal(payload, blob_associated_data(blob_id, 1, 0)),
                    len(payload))
        pack_id, data, _ = builder.finish(repo.cipher)
        any_backend.put(pack_name(pack_id), data)
        leftovers.append(pack_name(pack_id))
    dead = LockInfo(name="locks/crashed", holder="backup of vol", host=socket.gethostname(),
                    pid=_dead_pid(), exclusive=False, created=time.time(), time=time.time(),
                    process_namespace=process_namespace())
    any_backend.put(dead.name, encode_lock(dead))
    if isinstance(any_backend, engine.LocalBackend):
        partial = os.path.join(any_backend.root, "data", "ab", ".tmp-0123456789abcdef")
        os.makedirs(os.path.dirname(partial), exist_ok=True)
        open(partial, "wb").write(b"half a pack")
        os.utime(partial, (time.time() - 7200, time.time() - 7200))  # crashed two hours ago
        young = os.path.join(any_backend.root, "locks", ".tmp-fedcba9876543210")
        os.makedirs(os.path.dirname(young), exist_ok=True)
        open(young, "wb").write(b"a lock being written right now")
    else:
        any_backend.client.create_multipart_upload(Bucket=any_backend.bucket, Key="repo/data/ab/half")

    report = verify_repository(repo, read_data_percent=100)
    assert report.ok, report.errors
    assert report.unreferenced_packs == 2

    # (moto reports every upload as started in 2010: old enough for the default hour)
    result = prune_repository(repo)
    assert result.leftover_packs_deleted == 2
    assert result.temporary_files_removed + result.incomplete_uploads_aborted == 1
    remaining = all_objects(any_backend)
    assert not any(name in remaining for name in leftovers)
    assert "locks/crashed" not in remaining
    assert set(remaining) - set(objects) <= {name for name in remaining
                                             if name.startswith("index/")}
    if isinstance(any_backend, engine.LocalBackend):
        # only the old leftover went; the young one may be a put in progress
        assert list(any_backend.list_temporary()) == ["locks/.tmp-fedcba9876543210"]
    else:
        assert list(any_backend.list_incomplete_uploads()) == []
    assert verify_repository(repo, read_data_percent=100).ok
    assert len(repo.snapshots()) == len(snapshots)


def test_a_backup_after_prune_still_deduplicates_and_restores(repo, any_backend, history, tmp_path):
    source, _ = history
    forget_snapshots(repo, RetentionPolicy(keep_last=1))
    prune_repository(repo)
    fresh = engine.Repository.open(any_backend, KEY)
    result = fresh.backup(source, source="vol", parent=None)  # read every file again
    assert result.stats["blobs_new"] == 0  # all found in the index prune rewrote
    fresh.restore(result.snapshot_id, tmp_path / "out")
    assert tree_contents(tmp_path / "out") == tree_contents(source)


def test_prune_refuses_to_run_on_a_damaged_repository(repo, any_backend, history):
    _, (first, second, third) = history
    index = repo.load_index(reload=True)
    pack_ids = sorted({entry.pack_id for _, entry in index.items()})
    any_backend.delete(pack_name(pack_ids[0]))  # a pack some snapshot needs
    objects = all_objects(any_backend)
    with pytest.raises(DataIntegrityError, match="prune refused"):
        prune_repository(repo)
    assert {n for n in all_objects(any_backend) if not n.startswith("locks/")} == \
        {n for n in objects if not n.startswith("locks/")}


@LOCAL_ONLY
def test_repository_prune_and_forget_delegate_here(repo, history):
    forget = repo.forget(RetentionPolicy(keep_last=1), dry_run=True)
    pruned = repo.prune(dry_run=True)
    assert isinstance(forget, ForgetResult) and isinstance(pruned, PruneResult)


@LOCAL_ONLY
def test_prune_reports_progress_while_repacking(repo, history):
    forget_snapshots(repo, RetentionPolicy(keep_last=2))
    calls = []
    prune_repository(repo, progress=lambda *arguments: calls.append(arguments))
    assert calls and calls[-1][2] == "prune complete"


@LOCAL_ONLY
def test_prune_through_a_repository_opened_before_the_backups(any_backend, tmp_path):
    """A long-lived process (a worker) opened the repository before other backups ran."""
    engine.Repository.init(any_backend, KEY)
    early = engine.Repository.open(any_backend, KEY)
    early.load_index()
    writer = engine.Repository.open(any_backend, KEY)
    source = tmp_path / "s"
    for number in range(3):
        write_files(source, {"f": os.urandom(10_000), f"g{number}": b"x"})
        writer.backup(source, source="vol")
    early.forget(RetentionPolicy(keep_last=1))
    result = early.prune()
    assert result.snapshots == 1 and result.packs_deleted + result.packs_repacked >= 1
    assert verify_repository(engine.Repository.open(any_backend, KEY), read_data_percent=100).ok
