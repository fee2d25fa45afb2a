"""Throttled progress reporting and cooperative cancellation for long operations."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from .errors import Cancelled

ProgressCallback = Callable[[int, int, str], None]
CancelCheck = Callable[[], bool]


class ProgressReporter:
    """Accumulates done bytes from any thread; calls `callback(done, total, message)` at most
    every `interval` seconds (plus once from `finish`). A None callback costs nothing."""

    def __init__(self, callback: ProgressCallback | None, total: int = 0,
                 interval: float = 0.25, clock: Callable[[], float] = time.monotonic):
        self._callback = callback
        self.total = total
        self.done = 0
        self._interval = interval
        self._clock = clock
        self._last = -interval
        self._lock = threading.Lock()

    def advance(self, done_bytes: int, message: str | bytes = "") -> None:
        """Add `done_bytes`; `message` may be a bytes path (decoded only when shown)."""
        if self._callback is None:
            return
        with self._lock:
            self.done += done_bytes
            now = self._clock()
            if now - self._last < self._interval:
                return
            self._last = now
            done, total = self.done, max(self.total, self.done)
        if isinstance(message, bytes):
            message = os.fsdecode(message)
        self._callback(done, total, message)

    def finish(self, message: str = "done") -> None:
        if self._callback is not None:
            self._callback(self.done, max(self.total, self.done), message)


def check_cancelled(cancel: CancelCheck | None) -> None:
    """Raise `Cancelled` when the caller's `cancel()` says so."""
    if cancel is not None and cancel():
        raise Cancelled()
