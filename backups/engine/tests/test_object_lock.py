"""S3 Object Lock: the backend calls (moto_server with a lock-enabled bucket), locked backups,
and forget/prune keeping what is locked."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from backups import engine
from backups.engine.backend import BackendWrapper
from backups.engine.backends import LocalBackend
from backups.engine.backends.retry import RetryingBackend
from backups.engine.backends.s3 import S3Backend
from backups.engine.errors import (BackendUnavailable, ObjectLocked, ObjectLockUnsupported,
                                   SnapshotNotFound)
from backups.engine.objectlock import EXTENSION_SLACK, Retention, forget_known_retention
from backups.engine.prune import forget_snapshots, prune_repository
from backups.engine.tests.helpers import snapshot_tree, write_files

pytestmark = pytest.mark.engine

KEY = "44" * 32
MiB = 1024 * 1024


def in_days(days: float) -> Retention:
    return Retention("GOVERNANCE", dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days))


@pytest.fixture(autouse=True)
def _fresh_cache():
    forget_known_retention()
    yield
    forget_known_retention()


@pytest.fixture
def locked_store(s3_lock_bucket):
    store = RetryingBackend(S3Backend(s3_lock_bucket.name, "repo", client=s3_lock_bucket.client,
                                      multipart_threshold=1 * MiB, part_size=5 * MiB),
                            base_delay=0)
    yield store
    store.close()


def head(bucket, key):
    return bucket.client.head_object(Bucket=bucket.name, Key=f"repo/{key}")


def delete_markers(bucket) -> list[str]:
    answer = bucket.client.list_object_versions(Bucket=bucket.name)
    return [marker["Key"] for marker in answer.get("DeleteMarkers", ())]


# --- backend ---------------------------------------------------------------------------------
def test_a_put_with_retention_stores_the_object_locked(locked_store, s3_lock_bucket):
    retention = in_days(2)
    locked_store.put("index/one", b"payload", retention=retention)
    answer = head(s3_lock_bucket, "index/one")
    assert answer["ObjectLockMode"] == "GOVERNANCE"
    assert answer["ObjectLockRetainUntilDate"] == retention.until
    assert locked_store.retention("index/one") == retention
    assert locked_store.get("index/one") == b"payload"


def test_spooled_and_multipart_puts_are_locked_too(locked_store, s3_lock_bucket):
    retention = in_days(1)
    spool = locked_store.spool()
    spool.write(b"pack bytes")
    locked_store.put_spool("data/aa/small", spool, retention=retention)
    spool.close()
    big = os.urandom(6 * MiB)  # above the 1 MiB threshold: two parts
    locked_store.put("data/bb/big", big, retention=retention)
    for key in ("data/aa/small", "data/bb/big"):
        assert head(s3_lock_bucket, key)["ObjectLockRetainUntilDate"] == retention.until
    assert locked_store.get("data/bb/big") == big


def test_retention_is_extended_but_never_shortened(locked_store):
    locked_store.put("snapshots/s", b"x", retention=in_days(5))
    longer = in_days(9)
    locked_store.extend_retention("snapshots/s", longer)
    assert locked_store.retention("snapshots/s") == longer
    locked_store.extend_retention("snapshots/s", in_days(1))
    assert locked_store.retention("snapshots/s") == longer


def test_deleting_a_locked_object_fails_and_leaves_no_delete_marker(locked_store, s3_lock_bucket):
    locked_store.put("snapshots/locked", b"manifest", retention=in_days(1))
    locked_store.put("snapshots/free", b"manifest")
    with pytest.raises(ObjectLocked) as caught:
        locked_store.delete("snapshots/locked")
    assert "locked_until" in caught.value.detail
    assert locked_store.get("snapshots/locked") == b"manifest"
    locked_store.delete("snapshots/free")
    assert not locked_store.exists("snapshots/free")
    assert delete_markers(s3_lock_bucket) == ["repo/snapshots/free"]


def test_a_put_with_retention_is_retried_like_any_put(s3_lock_bucket):
    class FailsOnce(BackendWrapper):
        failed = False

        def put(self, name, data, retention=None):
            if not self.failed:
                self.failed = True
                raise BackendUnavailable("injected")
            return self.inner.put(name, data, retention=retention)

    store = RetryingBackend(FailsOnce(S3Backend(s3_lock_bucket.name, "repo",
                                                client=s3_lock_bucket.client)), base_delay=0)
    retention = in_days(1)
    store.put("keys/k", b"key", retention=retention)
    assert store.retries == 1
    assert store.retention("keys/k") == retention


def test_a_bucket_without_object_lock_is_refused_clearly(s3_bucket):
    store = S3Backend(s3_bucket.name, "repo", client=s3_bucket.client)
    assert store.object_lock_enabled() is False
    with pytest.raises(ObjectLockUnsupported, match="does not have Object Lock enabled"):
        store.check_object_lock()
    with pytest.raises(ObjectLockUnsupported):
        store.put("index/x", b"x", retention=in_days(1))
    assert store.retention is not None and not store.exists("index/x")


def test_a_local_repository_cannot_lock(tmp_path):
    store = LocalBackend(tmp_path / "repo")
    with pytest.raises(ObjectLockUnsupported):
        store.put("index/x", b"x", retention=in_days(1))
    with pytest.raises(ObjectLockUnsupported):
        engine.Repository.init(store, KEY).backup(tmp_path, retention=in_days(1))
    assert store.retention("config") is None and store.object_lock_enabled() is False


# --- backup ----------------------------------------------------------------------------------
@pytest.fixture
def repo(locked_store):
    return engine.Repository.init(locked_store, KEY)


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "source"
    write_files(root, {"a.txt": b"alpha" * 1000, "dir/b.bin": os.urandom(3 * MiB)})
    return root


def stored(repo, prefix):
    return sorted(repo.backend.list(prefix))


def test_a_locked_backup_writes_every_object_locked(repo, source, s3_lock_bucket):
    retention = in_days(3)
    result = repo.backup(source, retention=retention)
    assert result.retention == retention
    names = stored(repo, "data/") + stored(repo, "index/") + stored(repo, "snapshots/")
    assert len(names) >= 3
    for name in names:
        answer = head(s3_lock_bucket, name)
        assert answer["ObjectLockMode"] == "GOVERNANCE", name
        assert answer["ObjectLockRetainUntilDate"] == retention.until, name
    # what opens the repository is locked at least as long (with the extension slack)
    for name in ["config", *stored(repo, "keys/")]:
        assert repo.backend.retention(name).until == retention.until + EXTENSION_SLACK, name
    with pytest.raises(ObjectLocked):
        repo.backend.delete("config")


def test_reused_packs_are_locked_as_long_as_the_new_snapshot(repo, source, tmp_path):
    repo.backup(source)  # unlocked packs
    first_packs = stored(repo, "data/")
    first_indexes = set(stored(repo, "index/"))
    retention = in_days(30)
    result = repo.backup(source, retention=retention)
    assert result.stats["files_reused"] == 2 and result.packs == {}
    assert result.packs_extended == len(first_packs)
    for name in first_packs:
        assert repo.backend.retention(name).until == retention.until + EXTENSION_SLACK
    # one new index object lists the extended packs, locked as long as they are
    (extension_index,) = set(stored(repo, "index/")) - first_indexes
    assert repo.backend.retention(extension_index).until == retention.until + EXTENSION_SLACK
    # the next daily backup finds them locked long enough: nothing to extend
    assert repo.backup(source, retention=in_days(30.1)).packs_extended == 0
    # a restarted worker knows nothing: it reads the retentions and still extends nothing
    forget_known_retention()
    assert repo.backup(source, retention=in_days(30.2)).packs_extended == 0
    # a backup wanting more than the slack extends them again
    longer = in_days(40)
    assert repo.backup(source, retention=longer).packs_extended == len(first_packs)
    assert all(repo.backend.retention(name).until == longer.until + EXTENSION_SLACK for name in first_packs)


def test_a_locked_snapshot_cannot_be_forgotten_nor_deleted(repo, source):
    locked = repo.backup(source, retention=in_days(1)).snapshot_id
    (source / "a.txt").write_bytes(b"changed")
    newer = repo.backup(source).snapshot_id
    with pytest.raises(ObjectLocked, match="locked"):
        repo.delete_snapshot(locked)
    result = forget_snapshots(repo, {"keep_last": 1})
    assert result.remove == [] and locked in result.keep and newer in result.keep
    assert locked in result.locked
    assert set(repo.list_snapshot_ids()) == {locked, newer}


def test_prune_keeps_locked_packs_it_would_otherwise_delete(repo, source, tmp_path):
    repo.backup(source)
    leftover = "data/ab/" + "ab" * 32  # a locked pack no index lists (a failed locked backup)
    repo.backend.put(leftover, b"pack bytes", retention=in_days(1))
    dry = prune_repository(repo, dry_run=True)
    assert dry.locked_packs_kept == 1 and dry.leftover_packs_deleted == 0
    result = prune_repository(repo)
    assert result.locked_packs_kept == 1
    assert repo.backend.exists(leftover)


def test_prune_keeps_every_pack_a_locked_index_lists(repo, source, tmp_path):
    """A locked index object outlives prune; if its packs went, every later backup would
    load it, believe the blobs stored, skip writing them, and produce snapshots that cannot
    be restored."""
    first = repo.backup(source)
    packs = stored(repo, "data/")
    (index_name,) = stored(repo, "index/")
    repo.backend.extend_retention(index_name, in_days(1))  # only the index is locked
    repo.delete_snapshot(first.snapshot_id)
    result = prune_repository(repo)
    assert result.locked_index_objects_kept == 1
    assert result.locked_packs_kept == len(packs) and result.packs_deleted == 0
    assert stored(repo, "data/") == packs
    # a later backup of the same data deduplicates against that index and still restores
    again = engine.Repository.open(repo.backend, KEY).backup(source)
    assert again.stats["bytes_new"] == 0
    prune_repository(repo)
    reopened = engine.Repository.open(repo.backend, KEY)
    reopened.restore(again.snapshot_id, tmp_path / "restored")
    assert snapshot_tree(tmp_path / "restored") == snapshot_tree(source)
    with pytest.raises(SnapshotNotFound):
        reopened.load_snapshot(first.snapshot_id)


def test_a_repository_with_extended_locks_verifies_clean_and_reads_each_blob_once(repo, source):
    repo.backup(source)
    repo.backup(source, retention=in_days(30))  # writes the extension index: duplicate records
    report = engine.Repository.open(repo.backend, KEY).verify(read_data_percent=100)
    assert report.errors == [] and report.index_objects == 2
    blobs = len(engine.Repository.open(repo.backend, KEY).load_index())
    assert report.blobs_read == blobs


def test_locked_puts_carry_a_checksum_even_when_the_client_sends_none_by_default(s3_lock_bucket):
    """S3 (and moto) refuse a lock put without Content-MD5 or a checksum; a client configured
    with request_checksum_calculation=when_required sends none unless asked."""
    import boto3
    from botocore.config import Config

    server = s3_lock_bucket.server
    client = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint_url, region_name=server.region,
        aws_access_key_id=server.access_key_id, aws_secret_access_key=server.secret_access_key,
        config=Config(request_checksum_calculation="when_required", retries={"max_attempts": 1},
                      s3={"addressing_style": "path"}))
    store = S3Backend(s3_lock_bucket.name, "repo", client=client)
    retention = in_days(1)
    store.put("index/checked", b"payload", retention=retention)
    spool = store.spool()
    spool.write(b"pack")
    store.put_spool("data/cc/checked", spool, retention=retention)
    spool.close()
    assert store.retention("index/checked") == retention == store.retention("data/cc/checked")
