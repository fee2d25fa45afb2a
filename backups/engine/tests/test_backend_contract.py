"""The one contract suite every storage backend must pass (see `backups/engine/backend.py`).

Parametrized over the local directory backend and the S3 backend talking to a real
`moto_server` process over HTTP, on a plain bucket and on one with S3 Object Lock enabled. Backend-specific behaviour (multipart thresholds, outages)
has its own tests below or in `test_s3_backend.py`.
"""

from __future__ import annotations

import os
import threading

import pytest

from backups.engine.backends import LocalBackend, open_backend
from backups.engine.backends.retry import RetryingBackend
from backups.engine.errors import (BackendError, BackendUnavailable, ObjectCorrupt,
                                   ObjectNotFound)

pytestmark = pytest.mark.engine


@pytest.fixture(params=["local", "s3", "s3-object-lock"])
def backend(request, tmp_path):
    if request.param == "local":
        yield LocalBackend(tmp_path / "repo")
        return
    # A bucket with Object Lock is versioned and makes deletes check retention first: the
    # whole contract must still hold on it.
    bucket = request.getfixturevalue("s3_lock_bucket" if request.param == "s3-object-lock"
                                     else "s3_bucket")
    from backups.engine.backends.s3 import S3Backend

    store = S3Backend(bucket.name, "repo", client=bucket.client)
    yield store
    store.close()


def test_put_then_get_returns_the_same_bytes(backend):
    backend.put("data/ab/abcdef", b"hello world")
    assert backend.get("data/ab/abcdef") == b"hello world"


def test_empty_object_round_trips(backend):
    backend.put("index/empty", b"")
    assert backend.get("index/empty") == b""
    assert backend.size("index/empty") == 0
    assert backend.exists("index/empty")


def test_ranged_get_returns_exactly_the_range(backend):
    payload = bytes(range(256)) * 40
    backend.put("data/00/pack", payload)
    assert backend.get("data/00/pack", 10, 20) == payload[10:30]
    assert backend.get("data/00/pack", 5000) == payload[5000:]
    assert backend.get("data/00/pack", 0, len(payload)) == payload
    assert backend.get("data/00/pack", len(payload) - 1, 1) == payload[-1:]


def test_ranged_get_past_the_end_is_a_short_read_error(backend):
    backend.put("data/00/short", b"0123456789")
    with pytest.raises(ObjectCorrupt):
        backend.get("data/00/short", 5, 10)


def test_zero_length_get_returns_nothing(backend):
    backend.put("data/00/zero", b"abc")
    assert backend.get("data/00/zero", 1, 0) == b""


def test_missing_object_raises_object_not_found(backend):
    with pytest.raises(ObjectNotFound):
        backend.get("snapshots/missing")
    with pytest.raises(ObjectNotFound):
        backend.get("snapshots/missing", 3, 4)
    with pytest.raises(ObjectNotFound):
        backend.size("snapshots/missing")
    assert backend.exists("snapshots/missing") is False


def test_object_not_found_is_a_permanent_backend_error(backend):
    with pytest.raises(BackendError) as caught:
        backend.get("keys/none")
    assert caught.value.transient is False
    assert caught.value.code == "object_not_found"


def test_overwrite_replaces_the_whole_object(backend):
    backend.put("config", b"A" * 1000)
    backend.put("config", b"B" * 10)
    assert backend.get("config") == b"B" * 10
    assert backend.size("config") == 10


def test_readers_never_see_a_partly_overwritten_object(backend):
    first, second = b"A" * 120_000, b"B" * 80_000
    backend.put("config", first)
    stop = threading.Event()
    seen = []

    def overwrite():
        for turn in range(8):
            backend.put("config", second if turn % 2 == 0 else first)
        stop.set()

    writer = threading.Thread(target=overwrite)
    writer.start()
    while not stop.is_set():
        seen.append(backend.get("config"))
    writer.join()
    assert seen and all(data in (first, second) for data in seen)


def test_size_and_exists(backend):
    backend.put("keys/one", b"x" * 123)
    assert backend.size("keys/one") == 123
    assert backend.exists("keys/one")
    assert not backend.exists("keys/two")


def test_list_yields_each_name_under_the_prefix_once(backend):
    names = {"data/aa/1", "data/aa/2", "data/bb/3", "index/4", "snapshots/5", "config"}
    for name in names:
        backend.put(name, name.encode())
    assert sorted(backend.list("data/")) == ["data/aa/1", "data/aa/2", "data/bb/3"]
    assert sorted(backend.list("index/")) == ["index/4"]
    assert sorted(backend.list("locks/")) == []
    assert sorted(backend.list("")) == sorted(names)


def test_list_of_an_empty_or_missing_type_is_empty(backend):
    assert list(backend.list("snapshots/")) == []


def test_delete_removes_and_is_idempotent(backend):
    backend.put("locks/l1", b"lock")
    backend.delete("locks/l1")
    assert not backend.exists("locks/l1")
    assert list(backend.list("locks/")) == []
    backend.delete("locks/l1")  # missing: not an error (prune may be retried)


def test_concurrent_puts_of_distinct_objects_all_land(backend):
    def writer(start):
        for index in range(start, start + 10):
            backend.put(f"data/cc/{index:04d}", str(index).encode())

    threads = [threading.Thread(target=writer, args=(start,)) for start in (0, 10, 20, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(list(backend.list("data/cc/"))) == 40
    assert backend.get("data/cc/0031") == b"31"


def test_create_stores_only_when_the_name_is_free(backend):
    assert backend.create("config", b"first") is True
    assert backend.create("config", b"second") is False
    assert backend.get("config") == b"first"


def test_concurrent_creates_of_one_name_have_exactly_one_winner(backend):
    results, start = {}, threading.Barrier(8)

    def creator(number):
        start.wait()
        results[number] = backend.create("config", f"writer {number}".encode())

    threads = [threading.Thread(target=creator, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [number for number, created in results.items() if created]
    assert len(winners) == 1
    assert backend.get("config") == f"writer {winners[0]}".encode()


def test_object_lock_is_all_or_nothing(backend):
    """A backend either locks what it is asked to lock, and then refuses to delete it, or it
    refuses the locked put and stores nothing; it never stores the object unlocked."""
    from datetime import datetime, timedelta, timezone

    from backups.engine.errors import ObjectLocked, ObjectLockUnsupported
    from backups.engine.objectlock import Retention

    retention = Retention("GOVERNANCE", datetime.now(timezone.utc) + timedelta(days=1))
    backend.put("snapshots/plain", b"unlocked")
    assert backend.retention("snapshots/plain") is None
    if not backend.object_lock_enabled():
        with pytest.raises(ObjectLockUnsupported):
            backend.check_object_lock()
        with pytest.raises(ObjectLockUnsupported):
            backend.put("snapshots/locked", b"manifest", retention=retention)
        assert not backend.exists("snapshots/locked")
        return
    backend.check_object_lock()
    backend.put("snapshots/locked", b"manifest", retention=retention)
    assert backend.retention("snapshots/locked") == retention
    with pytest.raises(ObjectLocked):
        backend.delete("snapshots/locked")
    assert backend.get("snapshots/locked") == b"manifest"
    backend.delete("snapshots/plain")
    assert not backend.exists("snapshots/plain")


def test_local_create_leaves_no_temporary_file_either_way(tmp_path):
    store = LocalBackend(tmp_path / "repo")
    store.create("config", b"one")
    store.create("config", b"two")
    assert list(store.list_temporary()) == []


def _spool_with(backend, *pieces):
    spool = backend.spool()
    for piece in pieces:
        spool.write(piece)
    return spool


def test_put_spool_stores_everything_written_to_the_spool(backend):
    pieces = [os.urandom(1000), b"", os.urandom(300_000), b"tail"]
    spool = _spool_with(backend, *pieces)
    assert spool.size == sum(map(len, pieces))
    try:
        backend.put_spool("data/cd/spooled", spool)
    finally:
        spool.close()
    assert backend.get("data/cd/spooled") == b"".join(pieces)
    assert list(backend.list("data/")) == ["data/cd/spooled"]
    if isinstance(backend, LocalBackend):
        assert list(backend.list_temporary()) == []


def test_a_spool_closed_without_being_stored_leaves_nothing(backend):
    spool = _spool_with(backend, b"abandoned pack")
    spool.close()
    assert list(backend.list("")) == []
    if isinstance(backend, LocalBackend):
        assert list(backend.list_temporary()) == []
        assert os.listdir(backend.root) == []


def test_local_spool_becomes_the_object_by_rename_not_copy(tmp_path):
    store = LocalBackend(tmp_path / "repo")
    spool = _spool_with(store, b"x" * 70_000)
    assert os.path.dirname(spool.path) == store.root  # same file system as the objects
    spooled_inode = os.stat(spool.path).st_ino
    store.put_spool("data/ee/renamed", spool)
    spool.close()  # must not remove the stored object
    assert os.stat(tmp_path / "repo" / "data" / "ee" / "renamed").st_ino == spooled_inode
    assert store.get("data/ee/renamed") == b"x" * 70_000


def test_invalid_names_are_refused(backend):
    for bad in ("", "/abs", "data/../config"):
        with pytest.raises(BackendError):
            backend.put(bad, b"x")


# --- local specifics ------------------------------------------------------------------
def test_local_put_leaves_no_temporary_file(tmp_path):
    store = LocalBackend(tmp_path)
    store.put("data/ab/x", b"payload")
    assert sorted(os.listdir(tmp_path / "data" / "ab")) == ["x"]
    assert list(store.list_temporary()) == []


def test_local_interrupted_put_is_invisible_and_cleanable(tmp_path):
    store = LocalBackend(tmp_path)
    store.put("data/ab/x", b"payload")
    # what a crash between write and rename leaves behind
    (tmp_path / "data" / "ab" / ".tmp-deadbeef").write_bytes(b"partial")
    assert list(store.list("data/")) == ["data/ab/x"]
    assert list(store.list_temporary()) == ["data/ab/.tmp-deadbeef"]
    store.delete_temporary("data/ab/.tmp-deadbeef")
    assert list(store.list_temporary()) == []


def test_local_failed_put_keeps_the_old_object(tmp_path):
    store = LocalBackend(tmp_path)
    store.put("config", b"old")

    with pytest.raises(TypeError):
        store.put("config", object())  # write fails midway
    assert store.get("config") == b"old"
    assert list(store.list_temporary()) == []


def test_open_backend_wraps_a_local_path_in_retries(tmp_path):
    store = open_backend(str(tmp_path / "r"))
    assert isinstance(store, RetryingBackend)
    assert isinstance(store.inner, LocalBackend)
    store.put("config", b"c")
    assert open_backend(f"file://{tmp_path}/r").get("config") == b"c"


def test_open_backend_refuses_unknown_schemes():
    with pytest.raises(BackendError):
        open_backend("ftp://host/x")


# --- retries (fault-injecting test double, as in kopia's blobtesting) ----------------------
class FlakyBackend:
    """Wraps a backend; the first `failures` calls of every operation raise `error`."""

    def __init__(self, inner, failures: int, error=BackendUnavailable):
        self.inner = inner
        self.location = inner.location
        self.failures = failures
        self.error = error
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, operation):
        self.calls[operation] = self.calls.get(operation, 0) + 1
        if self.calls[operation] <= self.failures:
            raise self.error(f"injected failure {self.calls[operation]} of {operation}")

    def put(self, name, data):
        self._maybe_fail("put")
        return self.inner.put(name, data)

    def spool(self):
        return self.inner.spool()

    def put_spool(self, name, spool):
        self._maybe_fail("put_spool")
        return self.inner.put_spool(name, spool)

    def get(self, name, offset=0, length=None):
        self._maybe_fail("get")
        return self.inner.get(name, offset, length)

    def list(self, prefix=""):
        # fails after yielding one name, so a retry must not repeat names already given
        self.calls["list"] = self.calls.get("list", 0) + 1
        for index, name in enumerate(self.inner.list(prefix)):
            yield name
            if index == 0 and self.calls["list"] <= self.failures:
                raise self.error("injected failure in the middle of a listing")

    def delete(self, name):
        self._maybe_fail("delete")
        return self.inner.delete(name)

    def exists(self, name):
        self._maybe_fail("exists")
        return self.inner.exists(name)

    def size(self, name):
        self._maybe_fail("size")
        return self.inner.size(name)

    def close(self):
        self.inner.close()


def _retrying(inner, attempts=4):
    delays = []
    wrapper = RetryingBackend(inner, attempts=attempts, base_delay=0.5, max_delay=2.0,
                              sleep=delays.append, random=lambda: 1.0)
    return wrapper, delays


def test_retrying_backend_rides_out_transient_failures(backend):
    wrapper, delays = _retrying(FlakyBackend(backend, failures=2))
    wrapper.put("data/aa/x", b"1")
    wrapper.put("data/aa/y", b"2")
    assert wrapper.get("data/aa/x") == b"1"
    assert wrapper.size("data/aa/x") == 1
    assert wrapper.exists("data/aa/x")
    assert sorted(wrapper.list("data/")) == ["data/aa/x", "data/aa/y"]
    wrapper.delete("data/aa/x")
    assert not backend.exists("data/aa/x")
    # exponential: 0.5, 1.0 for the two failures of each of the six operations
    assert delays == [0.5, 1.0] * 6
    assert wrapper.retries == 12


def test_retrying_backend_retries_a_spooled_put_whole(backend):
    wrapper, delays = _retrying(FlakyBackend(backend, failures=2))
    payload = os.urandom(200_000)
    spool = _spool_with(wrapper, payload[:1000], payload[1000:])
    try:
        wrapper.put_spool("data/aa/spooled", spool)
    finally:
        spool.close()
    assert delays == [0.5, 1.0]
    assert backend.get("data/aa/spooled") == payload  # the third attempt sent it all again


def test_retrying_backend_gives_up_after_the_last_attempt(backend):
    wrapper, delays = _retrying(FlakyBackend(backend, failures=10), attempts=3)
    with pytest.raises(BackendUnavailable):
        wrapper.put("config", b"x")
    assert delays == [0.5, 1.0]
    assert not backend.exists("config")


def test_retrying_backend_does_not_retry_permanent_errors(backend):
    flaky = FlakyBackend(backend, failures=1, error=ObjectNotFound)
    wrapper, delays = _retrying(flaky)
    with pytest.raises(ObjectNotFound):
        wrapper.get("config")
    assert delays == [] and flaky.calls["get"] == 1


def test_backoff_is_capped_and_jittered():
    wrapper = RetryingBackend(LocalBackend("/nonexistent"), attempts=10, base_delay=1.0,
                              max_delay=5.0, sleep=lambda _: None, random=lambda: 0.5)
    assert [wrapper.delay_before_retry(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 2.5, 2.5]


# --- S3 at scale: pagination and multipart -------------------------------------------------
@pytest.fixture
def s3_backend(s3_bucket):
    from backups.engine.backends.s3 import S3Backend

    store = S3Backend(s3_bucket.name, "repo/prefix", client=s3_bucket.client,
                      multipart_threshold=6 * 1024 * 1024, part_size=5 * 1024 * 1024)
    yield store


def test_s3_list_follows_continuation_tokens_past_1000_keys(s3_bucket, s3_backend):
    from concurrent.futures import ThreadPoolExecutor

    names = [f"data/{index % 256:02x}/{index:06d}" for index in range(1234)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda name: s3_backend.put(name, b""), names))
    s3_backend.put("index/not-data", b"")
    listed = list(s3_backend.list("data/"))
    assert len(listed) == 1234 and sorted(listed) == sorted(names)
    pages = list(s3_bucket.client.get_paginator("list_objects_v2").paginate(
        Bucket=s3_bucket.name, Prefix="repo/prefix/data/"))
    assert len(pages) == 2  # the listing really crossed a page boundary


def test_s3_big_objects_go_up_in_multipart_and_read_back(s3_bucket, s3_backend):
    payload = os.urandom(11 * 1024 * 1024 + 17)  # three parts: 5 MiB, 5 MiB, rest
    s3_backend.put("data/ff/big", payload)
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="repo/prefix/data/ff/big")
    assert head["ETag"].strip('"').endswith("-3")  # the multipart ETag names the part count
    assert s3_backend.size("data/ff/big") == len(payload)
    assert s3_backend.get("data/ff/big") == payload
    assert s3_backend.get("data/ff/big", 5 * 1024 * 1024 - 3, 10) == \
        payload[5 * 1024 * 1024 - 3:5 * 1024 * 1024 + 7]
    assert list(s3_backend.list_incomplete_uploads()) == []


def test_s3_spools_stream_in_one_put_or_go_multipart_when_big(s3_bucket, s3_backend):
    small, big = os.urandom(3 * 1024 * 1024), os.urandom(7 * 1024 * 1024)
    for name, payload in (("data/ff/small-spool", small), ("data/ff/big-spool", big)):
        spool = _spool_with(s3_backend, payload)
        try:
            s3_backend.put_spool(name, spool)
        finally:
            spool.close()
        assert s3_backend.get(name) == payload
    head = s3_bucket.client.head_object
    assert "-" not in head(Bucket=s3_bucket.name, Key="repo/prefix/data/ff/small-spool")["ETag"]
    assert head(Bucket=s3_bucket.name, Key="repo/prefix/data/ff/big-spool")["ETag"].strip(
        '"').endswith("-2")


def test_s3_small_objects_are_single_puts(s3_bucket, s3_backend):
    s3_backend.put("data/ff/small", b"x" * 1000)
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="repo/prefix/data/ff/small")
    assert "-" not in head["ETag"]


# --- a real outage: the S3 server process is frozen, then thawed ---------------------------
@pytest.mark.slow
def test_retrying_s3_backend_rides_out_a_frozen_server(private_s3_server):
    from backups.engine.backends.s3 import S3Backend

    bucket = private_s3_server.create_bucket()
    client = private_s3_server.client(connect_timeout=0.5, read_timeout=0.5)
    store = RetryingBackend(S3Backend(bucket, "repo", client=client), attempts=12,
                            base_delay=0.1, max_delay=0.5)
    store.put("config", b"before the outage")
    private_s3_server.pause()
    thaw = threading.Timer(2.5, private_s3_server.resume)
    thaw.start()
    try:
        # each frozen call times out after about a second; the wrapper keeps retrying
        assert store.get("config") == b"before the outage"
        store.put("data/aa/during", b"written across the outage")
    finally:
        thaw.cancel()
        private_s3_server.resume()
    assert store.retries >= 1  # the outage was real: at least one call timed out
    assert store.get("data/aa/during") == b"written across the outage"


def test_s3_backend_without_retries_reports_an_outage_as_transient(private_s3_server):
    from backups.engine.backends.s3 import S3Backend

    bucket = private_s3_server.create_bucket()
    store = S3Backend(bucket, "", client=private_s3_server.client(connect_timeout=0.5,
                                                                  read_timeout=0.5))
    private_s3_server.pause()
    try:
        with pytest.raises(BackendUnavailable) as caught:
            store.get("config")
    finally:
        private_s3_server.resume()
    assert caught.value.transient
    private_s3_server.stop()
    with pytest.raises(BackendUnavailable):
        store.put("config", b"x")  # connection refused
