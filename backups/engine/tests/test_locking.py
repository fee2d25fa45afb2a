"""Repository locks: shared locks coexist, exclusive excludes all, stale locks are ignored."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from backups.engine.backends import LocalBackend
from backups.engine.errors import FormatError, RepositoryLocked
from backups.engine.locking import (LOCK_MAGIC, LockInfo, acquire_lock, break_locks,
                                    decode_lock, encode_lock, process_namespace,
                                    remove_stale_locks, repository_lock)

pytestmark = pytest.mark.engine


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        return LocalBackend(tmp_path / "repo")
    bucket = request.getfixturevalue("s3_bucket")
    from backups.engine.backends.s3 import S3Backend

    return S3Backend(bucket.name, "repo", client=bucket.client)


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _foreign_lock(backend, name, *, exclusive, age=0.0, clock=time.time, host="other-host"):
    info = LockInfo(name=name, holder="someone else", host=host, pid=4242,
                    exclusive=exclusive, created=clock() - age, time=clock() - age)
    backend.put(name, encode_lock(info))
    return info


def test_two_shared_locks_coexist(backend):
    with repository_lock(backend, exclusive=False, holder="backup of vol-a") as first:
        with repository_lock(backend, exclusive=False, holder="backup of vol-b") as second:
            assert first.name != second.name
            assert sorted(backend.list("locks/")) == sorted([first.name, second.name])
    assert list(backend.list("locks/")) == []


def test_exclusive_lock_is_refused_while_a_shared_lock_is_held(backend):
    with repository_lock(backend, exclusive=False, holder="backup of vol-a"):
        with pytest.raises(RepositoryLocked) as caught:
            with repository_lock(backend, exclusive=True, holder="prune"):
                pytest.fail("prune must not get the lock while a backup runs")
    assert caught.value.transient is True
    assert "backup of vol-a" in caught.value.message
    assert len(list(backend.list("locks/"))) == 0  # the refused attempt left nothing behind


def test_shared_lock_is_refused_while_an_exclusive_lock_is_held(backend):
    with repository_lock(backend, exclusive=True, holder="prune"):
        with pytest.raises(RepositoryLocked, match="exclusive lock by prune"):
            acquire_lock(backend, exclusive=False, holder="backup")
        with pytest.raises(RepositoryLocked):
            acquire_lock(backend, exclusive=True, holder="second prune")
    with repository_lock(backend, exclusive=False, holder="backup"):
        pass


def test_a_lock_written_during_our_check_makes_us_back_off(tmp_path):
    """The optimistic re-check: a conflicting lock that appears after our first look wins."""
    store = LocalBackend(tmp_path)
    real_put = store.put

    def put_then_race(name, data):
        real_put(name, data)
        if name.startswith("locks/") and not store.exists("locks/racer"):
            _foreign_lock(store, "locks/racer", exclusive=True)

    store.put = put_then_race
    with pytest.raises(RepositoryLocked, match="someone else"):
        acquire_lock(store, exclusive=False, holder="backup")
    assert list(store.list("locks/")) == ["locks/racer"]


def test_stale_locks_are_ignored_and_removed(backend):
    clock = FakeClock()
    _foreign_lock(backend, "locks/old", exclusive=True, age=3600, clock=clock)
    with repository_lock(backend, exclusive=True, holder="prune", stale_after=1800,
                         clock=clock) as held:
        assert list(backend.list("locks/")) == [held.name]


def test_a_fresh_foreign_lock_is_not_stale(backend):
    clock = FakeClock()
    _foreign_lock(backend, "locks/recent", exclusive=False, age=60, clock=clock)
    with pytest.raises(RepositoryLocked):
        acquire_lock(backend, exclusive=True, holder="prune", stale_after=1800, clock=clock)
    assert remove_stale_locks(backend, stale_after=1800, clock=clock) == []
    clock.now += 1800
    assert remove_stale_locks(backend, stale_after=1800, clock=clock) == ["locks/recent"]


def test_a_lock_of_a_dead_process_on_this_host_is_stale(tmp_path):
    store = LocalBackend(tmp_path)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    info = LockInfo(name="locks/dead", holder="crashed backup", host=socket.gethostname(),
                    pid=dead_pid, exclusive=True, created=time.time(), time=time.time(),
                    process_namespace=process_namespace())
    store.put(info.name, encode_lock(info))
    with repository_lock(store, exclusive=True, holder="prune"):
        assert not store.exists("locks/dead")


def test_a_dead_pid_in_another_pid_namespace_proves_nothing(tmp_path):
    """Same host name, other container: that pid may be alive there; only time decides."""
    store = LocalBackend(tmp_path)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    for name, namespace in (("locks/other-container", "other-boot:4026531836"),
                            ("locks/old-format", "")):
        info = LockInfo(name=name, holder="backup elsewhere", host=socket.gethostname(),
                        pid=int(finished.stdout), exclusive=False, created=time.time(),
                        time=time.time(), process_namespace=namespace)
        store.put(name, encode_lock(info))
    with pytest.raises(RepositoryLocked, match="backup elsewhere"):
        acquire_lock(store, exclusive=True, holder="prune")


def test_the_lock_is_refreshed_while_held(tmp_path):
    store = LocalBackend(tmp_path)
    with repository_lock(store, exclusive=False, holder="long backup", stale_after=2.0,
                         refresh_interval=0.05) as held:
        first = decode_lock(held.name, store.get(held.name)).time
        deadline = time.monotonic() + 5
        while decode_lock(held.name, store.get(held.name)).time == first:
            assert time.monotonic() < deadline, "the lock was never refreshed"
            time.sleep(0.02)
        held.check()  # still ours


def test_a_removed_lock_is_reported_lost(tmp_path):
    store = LocalBackend(tmp_path)
    with repository_lock(store, exclusive=True, holder="prune", stale_after=2.0,
                         refresh_interval=0.05) as held:
        store.delete(held.name)  # what another process does when it judges us stale
        deadline = time.monotonic() + 5
        while not held.lost:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(RepositoryLocked, match="lock lost"):
            held.check()


def test_a_lock_not_refreshed_in_time_is_reported_lost(tmp_path):
    clock = FakeClock()
    with repository_lock(LocalBackend(tmp_path), exclusive=True, holder="prune",
                         stale_after=60, refresh_interval=30, clock=clock) as held:
        held.check()
        clock.now += 61  # the refresher could not reach the storage for too long
        with pytest.raises(RepositoryLocked):
            held.check()


def test_waiting_for_a_lock_succeeds_once_it_is_released(tmp_path):
    store = LocalBackend(tmp_path)
    backup = acquire_lock(store, exclusive=False, holder="backup")
    threading.Timer(0.3, backup.release).start()
    started = time.monotonic()
    with repository_lock(store, exclusive=True, holder="prune", wait=10, poll_interval=0.05):
        assert time.monotonic() - started >= 0.25


def test_waiting_gives_up_at_the_deadline(tmp_path):
    store = LocalBackend(tmp_path)
    with repository_lock(store, exclusive=False, holder="backup"):
        started = time.monotonic()
        with pytest.raises(RepositoryLocked):
            acquire_lock(store, exclusive=True, holder="prune", wait=0.3, poll_interval=0.05)
        assert 0.25 <= time.monotonic() - started < 5


def test_an_unreadable_lock_object_blocks_an_exclusive_lock(tmp_path):
    store = LocalBackend(tmp_path)
    store.put("locks/future", LOCK_MAGIC + bytes([99]) + b"{}")
    with pytest.raises(RepositoryLocked, match="unreadable lock"):
        acquire_lock(store, exclusive=True, holder="prune")
    assert break_locks(store) == ["locks/future"]
    with repository_lock(store, exclusive=True, holder="prune"):
        pass


def test_lock_objects_carry_magic_and_version():
    info = LockInfo(name="locks/x", holder="h", host="n", pid=1, exclusive=True,
                    created=1.0, time=2.0)
    data = encode_lock(info)
    assert data[:5] == b"SPLK\x01"
    assert decode_lock("locks/x", data) == info
    with pytest.raises(FormatError):
        decode_lock("locks/x", b"JUNK" + data[4:])
    with pytest.raises(FormatError):
        decode_lock("locks/x", data[:5] + b"{not json")


def test_lock_records_holder_host_and_pid(tmp_path):
    store = LocalBackend(tmp_path)
    with repository_lock(store, exclusive=False, holder="backup job 17") as held:
        stored = decode_lock(held.name, store.get(held.name))
    assert (stored.holder, stored.host, stored.pid, stored.exclusive) == \
        ("backup job 17", socket.gethostname(), os.getpid(), False)
    assert stored.process_namespace == process_namespace() != ""


def _wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def test_a_waiting_exclusive_locker_keeps_new_shared_lockers_out(tmp_path):
    """Writer preference: a stream of backups cannot starve prune."""
    store = LocalBackend(tmp_path)
    running_backup = acquire_lock(store, exclusive=False, holder="backup of vol-a")
    events = []

    def prune():
        with repository_lock(store, exclusive=True, holder="prune", wait=10,
                             poll_interval=0.02):
            events.append("prune has the lock")

    waiter = threading.Thread(target=prune)
    waiter.start()
    _wait_until(lambda: len(list(store.list("locks/"))) == 2)  # prune is queued
    with pytest.raises(RepositoryLocked, match="exclusive lock by prune"):
        acquire_lock(store, exclusive=False, holder="backup of vol-b")
    assert events == []  # the running backup still holds the repository
    running_backup.release()
    waiter.join(timeout=10)
    assert events == ["prune has the lock"]
    assert list(store.list("locks/")) == []


def test_queued_exclusive_lockers_go_in_order(tmp_path):
    store = LocalBackend(tmp_path)
    running_backup = acquire_lock(store, exclusive=False, holder="backup")
    order = []

    locks_while_second_waits = []

    def second_sleep(seconds):
        # Called each time the second prune has looked at the locks and chosen to wait.
        locks_while_second_waits.append(len(list(store.list("locks/"))))
        time.sleep(seconds)

    def prune(name, sleep=time.sleep):
        with repository_lock(store, exclusive=True, holder=name, wait=10,
                             poll_interval=0.02, sleep=sleep):
            order.append(name)
            time.sleep(0.1)

    first = threading.Thread(target=prune, args=("first prune",))
    first.start()
    _wait_until(lambda: len(list(store.list("locks/"))) == 2)
    second = threading.Thread(target=prune, args=("second prune", second_sleep))
    second.start()
    # The second sees the first queued and waits without queueing itself: whenever it
    # waits, only the backup's and the first prune's locks exist.
    _wait_until(lambda: len(locks_while_second_waits) >= 2)
    assert locks_while_second_waits[:2] == [2, 2]
    running_backup.release()
    first.join(timeout=10)
    second.join(timeout=10)
    assert order == ["first prune", "second prune"]


def test_a_queued_exclusive_locker_that_gives_up_leaves_no_lock(tmp_path):
    store = LocalBackend(tmp_path)
    with repository_lock(store, exclusive=False, holder="long backup") as backup:
        with pytest.raises(RepositoryLocked, match="long backup"):
            acquire_lock(store, exclusive=True, holder="prune", wait=0.2, poll_interval=0.02)
        assert list(store.list("locks/")) == [backup.name]


def test_a_queued_exclusive_lock_is_kept_fresh_while_waiting(tmp_path):
    clock = FakeClock()
    store = LocalBackend(tmp_path)
    backup = acquire_lock(store, exclusive=False, holder="backup", stale_after=60,
                          refresh_interval=10, clock=clock)
    written = []

    def sleep(seconds):
        clock.now += 15
        backup.refresh()  # the backup is alive and refreshing too
        names = [n for n in store.list("locks/") if n != backup.name]
        written.append(decode_lock(names[0], store.get(names[0])).time)
        if len(written) == 6:
            backup.release()

    with repository_lock(store, exclusive=True, holder="prune", stale_after=60,
                         refresh_interval=10, wait=1000, poll_interval=1, clock=clock,
                         sleep=sleep):
        pass
    assert len(written) == 6 and written == sorted(written) and written[-1] > written[0]


def test_a_bucket_with_a_default_object_lock_retention_is_refused_before_any_lock_is_written(s3_lock_bucket):
    """A default retention would lock the repository's own lock objects, so the first job
    would block every later one for the rule's days; the engine says why instead, and
    writes nothing. The same bucket without the rule works."""
    from backups.engine.backends import open_backend
    from backups.engine.backends.s3 import S3Backend
    from backups.engine.errors import BackendError
    from backups.engine.repository import Repository

    client = s3_lock_bucket.client
    client.put_object_lock_configuration(Bucket=s3_lock_bucket.name, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    backend = open_backend(S3Backend(s3_lock_bucket.name, "repo", client=client), attempts=1)
    with pytest.raises(BackendError) as refused:
        Repository.init(backend, "11" * 32)
    assert "default Object Lock retention (GOVERNANCE, 1 days)" in refused.value.message
    assert refused.value.detail["code"] == "default_retention_on_bucket" and not refused.value.transient
    assert client.list_objects_v2(Bucket=s3_lock_bucket.name).get("KeyCount", 0) == 0

    client.put_object_lock_configuration(Bucket=s3_lock_bucket.name,
                                         ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    fresh = open_backend(S3Backend(s3_lock_bucket.name, "repo", client=client), attempts=1)
    repository = Repository.init(fresh, "11" * 32)
    with repository.lock(exclusive=True, holder="test"):
        pass
    assert list(fresh.list("locks/")) == []
