"""Copying snapshots into a second repository (replication): only what the target lacks is
copied, data deduplicates in the target, every copy restores byte for byte, a damaged source
is never replicated, and an interrupted copy is finished by the next one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backups import engine
from backups.engine.copy import copy_snapshots
from backups.engine.errors import Cancelled, DataIntegrityError, SnapshotNotFound
from backups.engine.packer import pack_name
from backups.engine.tests.test_cli import run_cli
from backups.engine.tests.helpers import KEY, LOCAL_ONLY, new_repository, snapshot_tree, write_files

OTHER_KEY = "22" * 32


@pytest.fixture
def source_tree(tmp_path):
    """A tree with every kind of entry a copy must carry: chunked data, duplicates, an empty
    file, a symlink, a hard link, a FIFO, modes."""
    source = tmp_path / "source"
    big = os.urandom(3 * 1024 * 1024)
    write_files(source, {"data/big.bin": big, "data/copy-of-big.bin": big, "empty": b"",
                         "etc/app.conf": b"setting=1\n", "deep/" + "d/" * 40 + "leaf": b"leaf"})
    os.chmod(source / "etc" / "app.conf", 0o600)
    os.symlink("etc/app.conf", source / "config")
    os.link(source / "etc" / "app.conf", source / "app.conf.link")
    os.mkfifo(source / "pipe", 0o640)
    return source


def _two_snapshots(repository, source: Path) -> list[str]:
    first = repository.backup(source, source="volume:1").snapshot_id
    (source / "etc" / "app.conf").write_bytes(b"setting=2\n")
    (source / "data" / "new.bin").write_bytes(os.urandom(600_000))
    second = repository.backup(source, source="volume:1").snapshot_id
    return [first, second]


def _restored(repository, snapshot_id: str, where: Path) -> dict:
    repository.restore(snapshot_id, where)
    return snapshot_tree(where)


def test_a_related_replica_gets_every_snapshot_under_the_same_id_and_restores_it(
        tmp_path, source_tree, any_backend):
    source = new_repository(tmp_path / "primary")
    snapshot_ids = _two_snapshots(source, source_tree)
    expected = {snapshot_id: _restored(source, snapshot_id, tmp_path / f"expected-{snapshot_id[:8]}")
                for snapshot_id in snapshot_ids}
    replica = engine.Repository.init(any_backend, OTHER_KEY, related_to=source)
    assert source.is_related(replica) and replica.config["related_to"] == source.config["id"]

    result = source.copy_to(replica)

    assert result.copied == {snapshot_id: snapshot_id for snapshot_id in snapshot_ids}
    assert result.skipped == [] and result.blobs_copied > 0
    # The replica opens with its own key only, and holds everything the snapshots need.
    reopened = engine.Repository.open(any_backend, OTHER_KEY)
    with pytest.raises(engine.WrongKey):
        engine.Repository.open(any_backend, KEY)
    assert reopened.list_snapshot_ids() == sorted(snapshot_ids)
    assert reopened.verify(read_data_percent=100).ok
    for snapshot_id in snapshot_ids:
        assert _restored(reopened, snapshot_id, tmp_path / f"from-replica-{snapshot_id[:8]}") \
            == expected[snapshot_id]
    # Deduplicated in the target: the duplicated 3 MiB file is stored once.
    assert reopened.stats().to_json()["packs"] >= 1
    assert result.bytes_copied < 3 * 1024 * 1024 + 600_000 + 256 * 1024


def test_a_second_copy_sends_only_what_is_new(tmp_path, source_tree):
    source = new_repository(tmp_path / "primary")
    first = source.backup(source_tree, source="volume:1").snapshot_id
    replica = engine.Repository.init(engine.LocalBackend(str(tmp_path / "replica")), OTHER_KEY,
                                     related_to=source)
    source.copy_to(replica)
    (source_tree / "small-change").write_bytes(b"one new file")
    second = source.backup(source_tree, source="volume:1").snapshot_id
    reads = []
    original_get = source.backend.get

    def counting_get(name, offset=0, length=None):
        reads.append((name, length))
        return original_get(name, offset, length)

    source.backend.get = counting_get
    result = source.copy_to(replica)

    assert result.copied == {second: second} and result.skipped == [first]
    # One new data blob (the new file) and the trees on its path; no big file is read again.
    data_bytes_read = sum(length or 0 for name, length in reads if name.startswith("data/"))
    assert data_bytes_read < 1024 * 1024
    assert result.blobs_copied <= 3
    again = source.copy_to(replica)
    assert again.copied == {} and sorted(again.skipped) == sorted([first, second])
    assert again.blobs_copied == 0


@LOCAL_ONLY
def test_an_unrelated_repository_gets_rewritten_copies_that_restore_identically(
        tmp_path, source_tree, any_backend):
    source = new_repository(tmp_path / "primary")
    snapshot_ids = _two_snapshots(source, source_tree)
    target = engine.Repository.init(any_backend, OTHER_KEY)
    assert not source.is_related(target)

    result = source.copy_to(target)

    assert set(result.copied) == set(snapshot_ids)
    assert all(source_id != target_id for source_id, target_id in result.copied.items())
    copies = {info.original: info for info in target.snapshots()}
    assert set(copies) == set(snapshot_ids)
    newest = copies[snapshot_ids[1]]
    assert newest.parent == result.copied[snapshot_ids[0]]  # parents follow the copy
    assert newest.source == "volume:1"
    assert target.verify(read_data_percent=100).ok
    for snapshot_id in snapshot_ids:
        assert _restored(target, result.copied[snapshot_id], tmp_path / f"t-{snapshot_id[:8]}") \
            == _restored(source, snapshot_id, tmp_path / f"s-{snapshot_id[:8]}")
    # Dedup in the target: both snapshots share the big file, stored once.
    assert result.bytes_copied < 3 * 1024 * 1024 + 600_000 + 256 * 1024
    # Copying again finds the copies by their `original` and writes nothing.
    again = source.copy_to(target)
    assert again.copied == {} and sorted(again.skipped) == sorted(snapshot_ids)
    # A copy of a copy keeps the first origin.
    third = engine.Repository.init(engine.LocalBackend(str(tmp_path / "third")), KEY)
    target.copy_to(third)
    assert {info.original for info in third.snapshots()} == set(snapshot_ids)


def test_only_the_named_snapshots_are_copied(tmp_path, source_tree):
    source = new_repository(tmp_path / "primary")
    first, second = _two_snapshots(source, source_tree)
    replica = engine.Repository.init(engine.LocalBackend(str(tmp_path / "replica")), KEY,
                                     related_to=source)
    result = source.copy_to(replica, [first[:10]])
    assert result.copied == {first: first}
    assert replica.list_snapshot_ids() == [first]
    with pytest.raises(SnapshotNotFound):
        source.copy_to(replica, ["0123456789"])


def test_a_damaged_source_is_not_replicated(tmp_path, source_tree):
    source = new_repository(tmp_path / "primary")
    snapshot_id = source.backup(source_tree, source="volume:1").snapshot_id
    # Flip one byte inside the biggest pack (data, not its trailer).
    packs = source.list_packs()
    biggest = max(packs, key=lambda pack_id: source.backend.size(pack_name(pack_id)))
    path = Path(tmp_path / "primary" / packs[biggest])
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0xFF
    os.chmod(path, 0o600)
    path.write_bytes(bytes(damaged))
    replica = engine.Repository.init(engine.LocalBackend(str(tmp_path / "replica")), KEY,
                                     related_to=source)

    with pytest.raises(DataIntegrityError):
        source.copy_to(replica)

    assert replica.list_snapshot_ids() == []  # nothing claims to be a copy of it
    assert snapshot_id not in replica.list_snapshot_ids()


def test_an_interrupted_copy_keeps_what_it_finished_and_the_next_one_completes(tmp_path, source_tree):
    source = new_repository(tmp_path / "primary")
    first, second = _two_snapshots(source, source_tree)
    replica = engine.Repository.init(engine.LocalBackend(str(tmp_path / "replica")), KEY,
                                     related_to=source)
    calls = []

    def cancel_during_the_second_snapshot() -> bool:
        calls.append(len(replica.list_snapshot_ids()))
        return calls[-1] >= 1

    with source.lock(exclusive=False, holder="test"), replica.lock(exclusive=False, holder="test"):
        with pytest.raises(Cancelled):
            copy_snapshots(source, replica, cancel=cancel_during_the_second_snapshot)
    assert replica.list_snapshot_ids() == [first]

    result = source.copy_to(replica)
    assert result.copied == {second: second} and result.skipped == [first]
    assert replica.verify(read_data_percent=100).ok
    assert _restored(replica, second, tmp_path / "r") == _restored(source, second, tmp_path / "s")


def _point_the_cli_at(server, monkeypatch) -> None:
    """The S3_* variables the engine CLI reads for s3:// repositories."""
    for name, value in {"S3_ENDPOINT_URL": server.endpoint_url, "S3_REGION": server.region,
                        "S3_ACCESS_KEY_ID": server.access_key_id,
                        "S3_SECRET_ACCESS_KEY": server.secret_access_key}.items():
        monkeypatch.setenv(name, value)


def test_the_cli_makes_a_replica_copies_into_it_and_restores_from_it(tmp_path, source_tree, s3_bucket,
                                                                      monkeypatch):
    """The disaster-recovery path: a replica bucket on S3 made with `init --from-repo`, filled
    by `copy`, and restored from with the replica's key file alone."""
    primary_key, replica_key = tmp_path / "primary.key", tmp_path / "replica.key"
    primary_key.write_text("primary passphrase\n")
    replica_key.write_text("a different replica passphrase\n")
    primary = tmp_path / "primary"
    replica = f"s3://{s3_bucket.name}/replica"
    _point_the_cli_at(s3_bucket.server, monkeypatch)
    run_cli("init", "--repo", primary, "--key-file", primary_key)
    run_cli("backup", "--repo", primary, "--key-file", primary_key, source_tree)
    created = run_cli("init", "--repo", replica, "--key-file", replica_key,
                   "--from-repo", primary, "--from-key-file", primary_key)
    assert "related to" in created.stdout

    copied = run_cli("copy", "--repo", primary, "--key-file", primary_key,
                  "--to-repo", replica, "--to-key-file", replica_key)
    assert "1 snapshots copied, 0 already in the target" in copied.stdout
    again = run_cli("copy", "--repo", primary, "--key-file", primary_key, "--to-repo", replica,
                 "--to-key-file", replica_key, "--json")
    assert '"copied": {}' in again.stdout

    run_cli("restore", "--repo", replica, "--key-file", replica_key, "latest", tmp_path / "restored")
    assert snapshot_tree(tmp_path / "restored") == snapshot_tree(source_tree)
    wrong = run_cli("copy", "--repo", primary, "--key-file", primary_key, "--to-repo", replica,
                 "--to-key-file", primary_key, check=False)
    assert wrong.returncode == engine.WrongKey.exit_code and "error:" in wrong.stderr


# --- immutable replicas (S3 Object Lock) -----------------------------------------------------
@pytest.fixture
def locked_replica_store(s3_lock_bucket):
    from backups.engine.backends.s3 import S3Backend
    from backups.engine.objectlock import forget_known_retention

    forget_known_retention()  # what an earlier test's process learned must not save requests
    yield S3Backend(s3_lock_bucket.name, "replica", client=s3_lock_bucket.client)
    forget_known_retention()


def _in_days(days: float):
    import datetime as dt

    from backups.engine.objectlock import Retention

    return Retention("GOVERNANCE", dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days))


def test_a_copy_with_retention_locks_what_it_writes_and_extends_what_it_reuses(
        tmp_path, source_tree, locked_replica_store):
    from backups.engine.errors import ObjectLocked
    from backups.engine.objectlock import EXTENSION_SLACK, forget_known_retention

    source = new_repository(tmp_path / "primary")
    first = source.backup(source_tree, source="volume:1").snapshot_id
    replica = engine.Repository.init(locked_replica_store, OTHER_KEY, related_to=source)
    short = _in_days(2)
    assert source.copy_to(replica, retention=short).copied == {first: first}
    first_packs = sorted(replica.backend.list("data/"))
    first_indexes = set(replica.backend.list("index/"))
    for name in [*first_packs, *first_indexes, f"snapshots/{first}"]:
        assert replica.backend.retention(name) == short, name
    for name in ["config", *replica.backend.list("keys/")]:
        assert replica.backend.retention(name).until >= short.until, name
    with pytest.raises(ObjectLocked):
        replica.delete_snapshot(first)

    # The second snapshot reuses the big file's packs, which the copy does not send again:
    # they must be locked as long as the new manifest, and listed by a locked index object.
    (source_tree / "small-change").write_bytes(b"one new file")
    second = source.backup(source_tree, source="volume:1").snapshot_id
    forget_known_retention()  # a fresh worker: it must read the retentions, not remember them
    longer = _in_days(30)
    result = source.copy_to(replica, retention=longer)
    assert result.copied == {second: second} and result.skipped == [first]
    assert replica.backend.retention(f"snapshots/{second}") == longer
    for name in first_packs:
        assert replica.backend.retention(name).until == longer.until + EXTENSION_SLACK, name
    new_indexes = set(replica.backend.list("index/")) - first_indexes
    assert len(new_indexes) == 2  # the copy's own, and the one for the extended packs
    assert all(replica.backend.retention(name).until >= longer.until for name in new_indexes)
    for name in ["config", *replica.backend.list("keys/")]:
        assert replica.backend.retention(name).until >= longer.until, name

    reopened = engine.Repository.open(locked_replica_store, OTHER_KEY)
    assert reopened.verify(read_data_percent=100).ok
    assert _restored(reopened, second, tmp_path / "from-replica") == snapshot_tree(source_tree)


def test_a_copy_with_retention_into_a_bucket_without_object_lock_writes_nothing(
        tmp_path, source_tree, s3_bucket):
    from backups.engine.backends.s3 import S3Backend
    from backups.engine.errors import ObjectLockUnsupported

    source = new_repository(tmp_path / "primary")
    source.backup(source_tree, source="volume:1")
    replica = engine.Repository.init(S3Backend(s3_bucket.name, "replica", client=s3_bucket.client),
                                     OTHER_KEY, related_to=source)
    with pytest.raises(ObjectLockUnsupported):
        source.copy_to(replica, retention=_in_days(1))
    assert replica.list_snapshot_ids() == [] and list(replica.backend.list("data/")) == []


def test_a_locked_copy_into_an_unrelated_repository_extends_the_packs_it_deduplicates_against(
        tmp_path, source_tree, locked_replica_store):
    """Unrelated: every blob is read and re-identified, and the target's pipeline finds the
    big file already stored; the packs holding it are still extended."""
    from backups.engine.objectlock import EXTENSION_SLACK

    source = new_repository(tmp_path / "primary")
    source.backup(source_tree, source="volume:1")
    target = engine.Repository.init(locked_replica_store, OTHER_KEY)
    assert not source.is_related(target)
    source.copy_to(target, retention=_in_days(2))
    first_packs = sorted(target.backend.list("data/"))
    (source_tree / "small-change").write_bytes(b"one new file")
    second = source.backup(source_tree, source="volume:1").snapshot_id
    longer = _in_days(30)
    copied = source.copy_to(target, [second], retention=longer).copied[second]
    assert copied != second
    assert target.backend.retention(f"snapshots/{copied}") == longer
    for name in first_packs:
        assert target.backend.retention(name).until == longer.until + EXTENSION_SLACK, name
    assert _restored(target, copied, tmp_path / "restored") == snapshot_tree(source_tree)


def test_the_cli_copies_into_a_locked_replica(tmp_path, source_tree, s3_lock_bucket, monkeypatch):
    key_file = tmp_path / "repository.key"
    key_file.write_text("one passphrase for both\n")
    primary, replica = tmp_path / "primary", f"s3://{s3_lock_bucket.name}/replica"
    _point_the_cli_at(s3_lock_bucket.server, monkeypatch)
    run_cli("init", "--repo", primary, "--key-file", key_file)
    run_cli("backup", "--repo", primary, "--key-file", key_file, source_tree)
    run_cli("init", "--repo", replica, "--key-file", key_file, "--from-repo", primary, "--from-key-file", key_file)
    half = run_cli("copy", "--repo", primary, "--key-file", key_file, "--to-repo", replica,
                "--to-key-file", key_file, "--lock-mode", "compliance", check=False)
    assert half.returncode == engine.errors.InvalidObjectLock.exit_code and "go together" in half.stderr
    run_cli("copy", "--repo", primary, "--key-file", key_file, "--to-repo", replica, "--to-key-file", key_file,
         "--lock-mode", "governance", "--lock-days", "3")
    (manifest,) = [item["Key"] for item in s3_lock_bucket.client.list_objects_v2(
        Bucket=s3_lock_bucket.name, Prefix="replica/snapshots/")["Contents"]]
    answer = s3_lock_bucket.client.head_object(Bucket=s3_lock_bucket.name, Key=manifest)
    assert answer["ObjectLockMode"] == "GOVERNANCE"
    locked_for = answer["ObjectLockRetainUntilDate"] - answer["LastModified"]
    assert 2.9 * 86400 < locked_for.total_seconds() <= 3 * 86400 + 60
