"""The one contract suite every storage backend must pass (see `backups/engine/backend.py`).

Parametrized over the local directory backend and the S3 backend talking to a real
`moto_server` process over HTTP. Backend-specific behaviour (multipart thresholds, outages)
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


@pytest.fixture(params=["local"])
def backend(request, tmp_path):
    if request.param == "local":
        yield LocalBackend(tmp_path / "repo")
        return
    bucket = request.getfixturevalue("s3_bucket")
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
