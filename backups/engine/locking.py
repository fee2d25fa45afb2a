"""Repository locks: objects `locks/<random id>` that every writer and prune hold.

Why locks (and not mark-and-sweep with a grace period): prune deletes packs that no snapshot
references. A backup that is running has already written packs and index entries its
snapshot will reference only when it commits, and it skips uploading blobs it finds in the
index (dedup) — so a prune running at the same time could delete a pack a backup is about to
reference, and the backup would commit a snapshot pointing at nothing. Backups, restores and
verifies take a SHARED lock; prune takes an EXCLUSIVE lock. Shared locks coexist; an exclusive
lock excludes every other lock. A grace period would need trustworthy object timestamps from
every S3 implementation and still leaves a window; a lock is simpler to reason about, and its
cost (prune waits for running backups) is what an operator expects. See
`docs/storage-backends.md`.

Lock object layout (version 1):

    offset 0  4 bytes  magic b"SPLK"
    offset 4  1 byte   format version (1)
    offset 5  ...      UTF-8 JSON: {"holder": str, "host": str, "pid": int,
                                    "process_namespace": str, "exclusive": bool,
                                    "created": float, "time": float}

`process_namespace` names the PID namespace the pid belongs to (boot id + PID namespace
inode, e.g. one container); "" when unknown. Readers of older/other lock objects treat a
missing field as "".

`time` is the last refresh (seconds since the epoch, wall clock of the holder's host). While
held, a background thread rewrites the object every `refresh_interval`. A lock whose `time`
is older than `stale_after` (its holder crashed or lost the storage), or one whose holder
provably no longer exists, is stale: it is ignored and removed by the next acquirer.
"Provably" means same host name AND same PID namespace (so a pid is only looked up where it
means the same process: two containers may share a host name or a kernel, never both a boot
and a PID namespace) and no such pid.
Hosts sharing a repository need clocks within a small fraction of `stale_after` (NTP).

Acquisition is optimistic, as in restic: check for conflicting locks, write ours, check again;
if a conflicting lock appeared in between, remove ours and fail (or wait and retry). Two
exclusive lockers racing may both back off; neither can win wrongly. An exclusive locker
given a `wait` queues instead: its lock stays written while it waits for shared holders, so
new shared lockers stay out and backups starting every minute cannot starve prune.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from .backend import Backend
from .errors import BackendError, FormatError, ObjectNotFound, RepositoryLocked

log = logging.getLogger(__name__)

LOCK_MAGIC = b"SPLK"
LOCK_VERSION = 1
LOCK_PREFIX = "locks/"
DEFAULT_STALE_AFTER = 30 * 60.0


@dataclass(frozen=True)
class LockInfo:
    """One lock object as read from the repository."""

    name: str
    holder: str
    host: str
    pid: int
    exclusive: bool
    created: float
    time: float
    process_namespace: str = ""

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return f"{kind} lock by {self.holder} (pid {self.pid} on {self.host})"


def encode_lock(info: LockInfo) -> bytes:
    body = {"holder": info.holder, "host": info.host, "pid": info.pid,
            "process_namespace": info.process_namespace,
            "exclusive": info.exclusive, "created": info.created, "time": info.time}
    return LOCK_MAGIC + bytes([LOCK_VERSION]) + json.dumps(body, sort_keys=True).encode()


def decode_lock(name: str, data: bytes) -> LockInfo:
    """Parse a lock object; `FormatError` for a wrong magic, version or body."""
    if data[:4] != LOCK_MAGIC:
        raise FormatError(f"{name} is not a lock object (bad magic)")
    if len(data) < 5 or data[4] != LOCK_VERSION:
        raise FormatError(f"{name} has an unsupported lock format version")
    try:
        body = json.loads(data[5:].decode())
        return LockInfo(name=name, holder=str(body["holder"]), host=str(body["host"]),
                        pid=int(body["pid"]), exclusive=bool(body["exclusive"]),
                        created=float(body["created"]), time=float(body["time"]),
                        process_namespace=str(body.get("process_namespace", "")))
    except (ValueError, KeyError, TypeError) as error:
        raise FormatError(f"{name} has a malformed lock body") from error


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@functools.lru_cache(maxsize=1)
def process_namespace() -> str:
    """Identity of this process's PID namespace: "<boot id>:<pid namespace inode>", or ""."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot_id = handle.read().strip()
        return f"{boot_id}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def is_stale(info: LockInfo, now: float, stale_after: float) -> bool:
    """A lock is stale when not refreshed for `stale_after`, or its holder provably exited."""
    if now - info.time > stale_after:
        return True
    same_processes = (info.host == socket.gethostname() and info.process_namespace != ""
                      and info.process_namespace == process_namespace())
    return same_processes and not _process_exists(info.pid)


def read_locks(backend: Backend) -> Iterator[LockInfo | tuple[str, Exception]]:
    """Every lock object; unreadable ones as (name, error) so callers can decide."""
    for name in backend.list(LOCK_PREFIX):
        try:
            yield decode_lock(name, backend.get(name))
        except ObjectNotFound:
            continue  # released between list and get
        except FormatError as error:
            yield name, error


def remove_stale_locks(backend: Backend, *, stale_after: float | timedelta = DEFAULT_STALE_AFTER,
                       clock: Callable[[], float] = time.time) -> list[str]:
    """Delete stale lock objects; returns their names."""
    limit = _seconds(stale_after)
    removed = []
    for entry in read_locks(backend):
        if isinstance(entry, LockInfo) and is_stale(entry, clock(), limit):
            backend.delete(entry.name)
            removed.append(entry.name)
    return removed


def break_locks(backend: Backend) -> list[str]:
    """Delete EVERY lock object (operator's last resort after making sure nothing runs)."""
    names = list(backend.list(LOCK_PREFIX))
    for name in names:
        backend.delete(name)
    return names


class HeldLock:
    """A lock this process holds; refreshed by a daemon thread until `release()`."""

    def __init__(self, backend: Backend, info: LockInfo, refresh_interval: float,
                 stale_after: float, clock: Callable[[], float]):
        self.backend = backend
        self.info = info
        self.name = info.name
        self.exclusive = info.exclusive
        self._refresh_interval = refresh_interval
        self._stale_after = stale_after
        self._clock = clock
        self._stopped = threading.Event()
        self._last_refresh = info.time
        self._lost_reason: str | None = None
        self._thread = threading.Thread(target=self._refresh_loop, daemon=True,
                                        name=f"lock-refresh-{info.name[-8:]}")
        self._thread.start()

    @property
    def lost(self) -> bool:
        return self._lost_reason is not None

    def check(self) -> None:
        """Raise `RepositoryLocked` if the lock may no longer protect us.

        Long operations call this between steps (prune before deleting anything): a lock
        that could not be refreshed for `stale_after` may have been removed by another
        process, which may now be doing what the lock was meant to prevent.
        """
        if self._lost_reason is None and self._clock() - self._last_refresh > self._stale_after:
            self._lost_reason = "the lock could not be refreshed in time"
        if self._lost_reason is not None:
            raise RepositoryLocked(f"repository lock lost: {self._lost_reason}",
                                   detail={"lock": self.name})

    def refresh(self) -> None:
        """Rewrite the lock with the current time (the thread does this periodically)."""
        if not self.backend.exists(self.name):
            # Someone judged us stale and removed the lock: the protection is gone.
            self._lost_reason = "the lock object was removed by another process"
            return
        now = self._clock()
        self.info = dataclasses.replace(self.info, time=now)
        self.backend.put(self.name, encode_lock(self.info))
        self._last_refresh = now

    def _refresh_loop(self) -> None:
        while not self._stopped.wait(self._refresh_interval):
            try:
                self.refresh()
            except BackendError as error:
                log.warning("could not refresh repository lock %s: %s", self.name, error.message)
            if self._lost_reason is not None:
                log.error("repository lock %s lost: %s", self.name, self._lost_reason)
                return

    def release(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=max(5.0, self._refresh_interval))
        try:
            self.backend.delete(self.name)
        except BackendError as error:
            # Not fatal: the lock goes stale and is removed by the next acquirer.
            log.warning("could not remove repository lock %s: %s", self.name, error.message)


def _live_locks(backend: Backend, *, own_name: str | None, now: float,
                stale_after: float) -> tuple[list[LockInfo], list[str]]:
    """(other live locks, descriptions of unreadable ones); stale locks are removed."""
    live, unreadable = [], []
    for entry in read_locks(backend):
        if isinstance(entry, tuple):
            name, error = entry
            if name != own_name:
                # An unreadable lock might be a newer format's exclusive lock: respect it.
                unreadable.append(f"unreadable lock {name} ({error.message})")
            continue
        if entry.name == own_name:
            continue
        if is_stale(entry, now, stale_after):
            log.info("removing stale repository lock %s: %s", entry.name, entry.describe())
            try:
                backend.delete(entry.name)
            except BackendError:
                pass
            continue
        live.append(entry)
    return live, unreadable


def _blocking(live: list[LockInfo], unreadable: list[str], exclusive: bool) -> list[str]:
    return unreadable + [info.describe() for info in live if exclusive or info.exclusive]


def _precedes(other: LockInfo, mine: LockInfo) -> bool:
    """Exclusive lockers queue in (created, name) order; every process computes the same."""
    return (other.created, other.name) < (mine.created, mine.name)


def acquire_lock(backend: Backend, *, exclusive: bool, holder: str,
                 stale_after: float | timedelta = DEFAULT_STALE_AFTER,
                 refresh_interval: float | None = None, wait: float | timedelta = 0.0,
                 poll_interval: float = 1.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> HeldLock:
    """Take a lock or raise `RepositoryLocked` (transient) naming who holds the repository.

    `wait` > 0 keeps trying (every `poll_interval`) for that long before giving up.
    An exclusive locker that waits QUEUES: it writes its lock at once and waits for the
    shared holders to finish, while new shared lockers see it and stay out, so a steady
    stream of backups cannot starve prune. Queued exclusive lockers go in (created, name)
    order; a later one steps back until the earlier one is done.
    The caller must `release()` the returned lock; prefer `repository_lock`.
    """
    check_storage = getattr(backend, "check_lockable_repository", None)
    if check_storage is not None:  # S3: one request per backend object, then remembered
        check_storage()
    stale_seconds = _seconds(stale_after)
    refresh_seconds = refresh_interval if refresh_interval is not None else stale_seconds / 6
    if refresh_seconds <= 0 or refresh_seconds >= stale_seconds:
        raise ValueError("refresh_interval must be positive and shorter than stale_after")
    wait_seconds = _seconds(wait)
    deadline = clock() + wait_seconds
    while True:
        live, unreadable = _live_locks(backend, own_name=None, now=clock(),
                                       stale_after=stale_seconds)
        blocking = _blocking(live, unreadable, exclusive)
        may_queue = (exclusive and wait_seconds > 0 and not unreadable
                     and not any(info.exclusive for info in live))
        if not blocking or may_queue:
            now = clock()
            info = LockInfo(name=f"{LOCK_PREFIX}{secrets.token_hex(16)}", holder=holder,
                            host=socket.gethostname(), pid=os.getpid(), exclusive=exclusive,
                            created=now, time=now, process_namespace=process_namespace())
            backend.put(info.name, encode_lock(info))
            while True:
                # Another process may have written a conflicting lock between our check and
                # our write; whoever sees the other's lock backs off (or, queued, waits).
                live, unreadable = _live_locks(backend, own_name=info.name, now=clock(),
                                               stale_after=stale_seconds)
                blocking = _blocking(live, unreadable, exclusive)
                if not blocking:
                    return HeldLock(backend, info, refresh_seconds, stale_seconds, clock)
                earlier_exclusive = unreadable or [
                    other for other in live if other.exclusive and _precedes(other, info)]
                if not exclusive or earlier_exclusive or clock() >= deadline:
                    backend.delete(info.name)
                    break
                # queued behind shared holders only: keep our place, keep our lock fresh
                if clock() - info.time >= refresh_seconds:
                    info = dataclasses.replace(info, time=clock())
                    backend.put(info.name, encode_lock(info))
                sleep(poll_interval)
        if clock() >= deadline:
            kind = "an exclusive" if exclusive else "a shared"
            raise RepositoryLocked(
                f"cannot take {kind} lock on the repository: held by " + "; ".join(blocking),
                detail={"holders": blocking})
        # jitter so two waiting exclusive lockers do not collide forever
        sleep(poll_interval * (0.5 + secrets.randbelow(1000) / 1000))


@contextmanager
def repository_lock(backend: Backend, *, exclusive: bool, holder: str,
                    stale_after: float | timedelta = DEFAULT_STALE_AFTER,
                    refresh_interval: float | None = None, wait: float | timedelta = 0.0,
                    poll_interval: float = 1.0, clock: Callable[[], float] = time.time,
                    sleep: Callable[[float], None] = time.sleep) -> Iterator[HeldLock]:
    """Hold a shared (`exclusive=False`) or exclusive lock for the duration of the block.

    Backups, restores and verifies hold a shared lock; prune holds an exclusive one.
    Raises `RepositoryLocked` (transient) on conflict after waiting up to `wait`.
    """
    held = acquire_lock(backend, exclusive=exclusive, holder=holder, stale_after=stale_after,
                        refresh_interval=refresh_interval, wait=wait,
                        poll_interval=poll_interval, clock=clock, sleep=sleep)
    try:
        yield held
    finally:
        held.release()
