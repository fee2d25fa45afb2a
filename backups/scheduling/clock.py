"""The scheduler's notion of "now", injectable so tests control time.

Everything in `backups.scheduling` that depends on the current time asks `now()` here instead
of calling `django.utils.timezone.now()` directly. Tests replace the clock with
`use_clock(FixedClock(...))`; production uses the system clock. Returned datetimes are always
timezone-aware (UTC).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone


class SystemClock:
    """Wall-clock time of this host, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._now = at

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._now = at

    def advance(self, delta: timedelta) -> None:
        self._now = self._now + delta


_SYSTEM_CLOCK = SystemClock()
# Process-wide on purpose: a test injects one clock for the code under test in the same process
# (Celery eager calls, management commands); worker subprocesses always use the system clock.
_current = {"clock": _SYSTEM_CLOCK}


def get_clock():
    return _current["clock"]


def now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return _current["clock"].now()


@contextmanager
def use_clock(clock):
    """Run the body with `clock` as the scheduler's clock; restores the previous one after."""
    previous = _current["clock"]
    _current["clock"] = clock
    try:
        yield clock
    finally:
        _current["clock"] = previous
