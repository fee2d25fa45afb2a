"""S3 Object Lock for repository objects: the retention value and the rules built on it.

A backup run with a `Retention` writes every object it creates (packs, its index object, the
snapshot manifest) with that retention, and extends the retention of every older pack its
snapshot references through deduplication (`extend_referenced`), so that nothing a locked
snapshot needs can be deleted before it may be. Prune and forget ask `is_locked` before they
delete anything and keep what is locked (see prune.py).

Two modes, as S3 defines them:

* ``GOVERNANCE``: nobody deletes or overwrites a locked object version, nor shortens its
  retention, unless they hold the `s3:BypassGovernanceRetention` permission and ask for the
  bypass on the request. The engine never asks for it.
* ``COMPLIANCE``: nobody at all, the account's root user included, until the date passes.

Retention is only ever extended: S3 refuses to shorten a compliance retention, and the
engine never asks to shorten a governance one (it reads the current date first).

Extension cost: reading a pack's retention is one HEAD request. A locked backup reads the
retention of each pack it references that it has not seen locked long enough before, and
extends the ones locked for less than its own date to that date plus `EXTENSION_SLACK`, so
the daily backups that follow find them locked long enough and extend nothing. What a
process has learned is kept in `_known_until` (per backend location and pack), so a worker
pays the HEADs once, not once per backup.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import InvalidObjectLock
from .packer import PackEntry, pack_name

MODES = ("GOVERNANCE", "COMPLIANCE")
#: Packs whose retention must be extended are extended this much further than the backup's
#: own date: a week of daily backups then finds them locked long enough (no request at all),
#: at the price of keeping unused packs up to a week longer than strictly needed.
EXTENSION_SLACK = dt.timedelta(days=7)
#: Parallel HEAD / PutObjectRetention requests while extending.
EXTENSION_THREADS = 8
#: Longest retention accepted (S3's own limit is 100 years; nobody means more than ten here).
MAX_DAYS = 3650


@dataclass(frozen=True)
class Retention:
    """An Object Lock retention: `mode` (``GOVERNANCE`` or ``COMPLIANCE``) until `until`
    (timezone-aware UTC)."""

    mode: str
    until: dt.datetime

    def __post_init__(self):
        if self.mode not in MODES:
            raise InvalidObjectLock(f"object lock mode must be one of {', '.join(MODES)}, "
                                    f"not {self.mode!r}")
        if self.until.tzinfo is None:
            raise InvalidObjectLock("an object lock date must carry a time zone")
        # S3 keeps retention dates to the second; so do we, so that a date read back
        # compares equal to the one written.
        object.__setattr__(self, "until", self.until.astimezone(dt.timezone.utc)
                           .replace(microsecond=0))

    @classmethod
    def for_days(cls, mode: str, days: int, now: dt.datetime | None = None) -> "Retention":
        """The retention `days` days from `now` (default: the current time)."""
        mode = str(mode).upper()
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
            raise InvalidObjectLock(f"object lock days must be a whole number from 1 to {MAX_DAYS}")
        now = now or dt.datetime.now(dt.timezone.utc)
        return cls(mode, now + dt.timedelta(days=days))

    def covers(self, other: "Retention") -> bool:
        """True when this retention protects at least as long as `other`."""
        return self.until >= other.until

    def extended(self, slack: dt.timedelta = EXTENSION_SLACK) -> "Retention":
        return Retention(self.mode, self.until + slack)

    def to_json(self) -> dict:
        return {"mode": self.mode, "until": self.until.isoformat()}


def is_locked(retention: Retention | None, now: dt.datetime | None = None) -> bool:
    """True when an object with this retention cannot be deleted yet."""
    return retention is not None and retention.until > (now or dt.datetime.now(dt.timezone.utc))


class _KnownRetention:
    """{(backend location, object name): retain-until} learned in this process.

    Only ever a lower bound of the truth (retention is never shortened), so it can make a
    backup skip a request but never skip a needed extension.
    """

    def __init__(self, size: int = 1_000_000):
        self.size = size
        self._until: dict[tuple[str, str], dt.datetime] = {}
        self._lock = threading.Lock()

    def get(self, location: str, name: str) -> dt.datetime | None:
        with self._lock:
            return self._until.get((location, name))

    def learn(self, location: str, name: str, until: dt.datetime) -> None:
        with self._lock:
            key = (location, name)
            if len(self._until) >= self.size and key not in self._until:
                self._until.clear()  # crude bound: forgetting only costs HEAD requests
            if until > self._until.get(key, until - dt.timedelta(seconds=1)):
                self._until[key] = until

    def clear(self) -> None:
        with self._lock:
            self._until.clear()


_known_until = _KnownRetention()


def forget_known_retention() -> None:
    """Empty the process-wide cache (tests that count requests)."""
    _known_until.clear()


def extend_referenced(backend, names: Iterable[str], retention: Retention) -> list[str]:
    """Make every object in `names` locked until at least `retention.until`.

    Objects already known (or read) to be locked that long are left alone; the others get
    `retention.extended()`. Returns the names whose retention was extended. An object that is
    already locked keeps its mode and only gets the later date: S3 lets anyone extend a
    retention in its own mode, but changing the mode is either refused (COMPLIANCE to
    GOVERNANCE) or, GOVERNANCE to COMPLIANCE, not something to depend on across S3 servers.
    """
    location = backend.location
    wanted = retention.extended()
    todo = [name for name in names
            if (_known_until.get(location, name) or dt.datetime.min.replace(
                tzinfo=dt.timezone.utc)) < retention.until]

    def one(name: str) -> str | None:
        current = backend.retention(name)
        if current is not None and current.covers(retention):
            _known_until.learn(location, name, current.until)
            return None
        mode = current.mode if current is not None else wanted.mode
        backend.extend_retention(name, Retention(mode, wanted.until))
        _known_until.learn(location, name, wanted.until)
        return name

    if not todo:
        return []
    with ThreadPoolExecutor(EXTENSION_THREADS, thread_name_prefix="object-lock") as pool:
        return [name for name in pool.map(one, todo) if name is not None]


def locked_until(backend, names: Iterable[str], now: dt.datetime | None = None
                 ) -> dict[str, dt.datetime]:
    """{name: retain-until} of those `names` that are locked now. What this process already
    knows to be locked (`_known_until`) costs nothing; the rest is read (one HEAD each, on a
    few threads). An object that is gone is not locked. A date answered from the cache is a
    lower bound of the real one (another process may have extended it since)."""
    from .errors import ObjectNotFound

    now = now or dt.datetime.now(dt.timezone.utc)
    location = backend.location
    found: dict[str, dt.datetime] = {}
    unknown = []
    for name in names:
        known = _known_until.get(location, name)
        if known is not None and known > now:
            found[name] = known
        else:
            unknown.append(name)

    def read(name: str):
        try:
            return name, backend.retention(name)
        except ObjectNotFound:
            return name, None

    if unknown:
        with ThreadPoolExecutor(EXTENSION_THREADS, thread_name_prefix="object-lock") as pool:
            for name, retention in pool.map(read, unknown):
                if retention is not None:
                    _known_until.learn(location, name, retention.until)
                if is_locked(retention, now):
                    found[name] = retention.until
    return found


def remember_written(backend, names: Iterable[str], retention: Retention) -> None:
    """Record that `names` were just written with `retention` (no request needed later)."""
    for name in names:
        _known_until.learn(backend.location, name, retention.until)


def lock_snapshot_dependencies(repo, reused_pack_ids: Iterable[str], retention: Retention) -> list[str]:
    """Make what a snapshot locked with `retention` needs, beyond the objects written with it,
    locked at least as long; return the names of the packs whose retention was extended.

    Called by every writer of a locked snapshot (a backup, a copy into a locked replica) after
    its own packs and index object and before its manifest, so a locked manifest never names
    data that could be deleted before it:

    * the packs it reuses (`reused_pack_ids`: packs that already held blobs it references)
      are extended (`extend_referenced`), and those that were extended are listed again in
      one index object of their own, locked as long: the index objects that list them may be
      older and unlocked;
    * the config and every key object, without which nothing can be decrypted. (A key object
      locked this way cannot be removed before its date; see docs/security.md.)
    """
    extended = extend_referenced(repo.backend, sorted(map(pack_name, reused_pack_ids)), retention)
    if extended:
        wanted = {name.rsplit("/", 1)[-1] for name in extended}
        entries: dict[str, list[PackEntry]] = {pack_id: [] for pack_id in wanted}
        for blob_id, entry in repo.index.items():
            if entry.pack_id in wanted:
                entries[entry.pack_id].append(PackEntry(blob_id, entry.blob_type, entry.compression,
                                                        entry.offset, entry.length, entry.raw_length))
        index_name = repo.write_index(entries, retention=retention.extended())
        remember_written(repo.backend, [index_name], retention.extended())
    extend_referenced(repo.backend, ["config", *sorted(repo.backend.list("keys/"))], retention)
    return extended
