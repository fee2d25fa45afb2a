"""`RateLimitedBackend`: caps the bytes per second of `put` and `get` (restic's
`--limit-upload` / `--limit-download`).

One token bucket per direction, shared by every thread using the wrapper (the backup
pipeline uploads packs from several threads; together they stay under the limit). A call
takes its bytes in slices of at most `SLICE_BYTES`: each slice reserves its tokens under the
lock (the balance may go negative: that is the caller's debt) and then sleeps, outside the
lock, until the debt is paid. Threads therefore interleave slice by slice, and a limit below
the pack size works (a 16 MiB pack at 1 MiB/s takes ~16 s, paced in 64 KiB steps).

`put` is paced before the object is handed to the inner backend: `put` must stay atomic, so
the object cannot be written in pieces; pacing the bytes beforehand gives the same average
rate on the link. `get` is paced after the read, by the bytes it returned. `list`, `exists`,
`size` and `delete` move no object data and are not limited.

The bucket starts empty and holds at most `SLICE_BYTES` (or 1/10 s of the rate, if more), so
the limit holds from the first byte and an idle pause earns no big burst afterwards.
`clock` and `sleep` are injected so tests are instant and deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..backend import Backend, BackendWrapper, retention_arguments

#: Pacing step: small enough that concurrent uploads interleave smoothly, large enough that
#: a 16 MiB pack costs only 256 sleeps.
SLICE_BYTES = 64 * 1024


class TokenBucket:
    """`take(n)` blocks until `n` bytes fit under `rate` bytes per second. Thread-safe."""

    def __init__(self, rate: float, *, clock: Callable[[], float], sleep: Callable[[float], None]):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = max(float(SLICE_BYTES), self.rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._updated = clock()

    def take(self, amount: int) -> None:
        """Wait until `amount` bytes may pass, in slices of at most `SLICE_BYTES`."""
        remaining = amount
        while remaining > 0:
            step = min(remaining, SLICE_BYTES)
            remaining -= step
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                self._tokens -= step
                debt = -self._tokens
            if debt > 0:
                self._sleep(debt / self.rate)


def _bucket(rate, clock, sleep) -> TokenBucket | None:
    if rate is None or rate == 0:
        return None
    if rate < 0:
        raise ValueError("a bandwidth limit must not be negative")
    return TokenBucket(rate, clock=clock, sleep=sleep)


class RateLimitedBackend(BackendWrapper):
    """Wraps `inner`; `None` or 0 for a direction means unlimited."""

    def __init__(self, inner: Backend, upload_bytes_per_second: float | None = None,
                 download_bytes_per_second: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(inner)
        self.upload_bytes_per_second = upload_bytes_per_second or None
        self.download_bytes_per_second = download_bytes_per_second or None
        self._upload = _bucket(upload_bytes_per_second, clock, sleep)
        self._download = _bucket(download_bytes_per_second, clock, sleep)

    def put(self, name: str, data: bytes, retention=None) -> None:
        if self._upload is not None:
            self._upload.take(len(data))
        return self.inner.put(name, data, **retention_arguments(retention))

    def put_spool(self, name: str, spool, retention=None) -> None:
        if self._upload is not None:
            self._upload.take(spool.size)
        return self.inner.put_spool(name, spool, **retention_arguments(retention))

    def create(self, name: str, data: bytes) -> bool:
        if self._upload is not None:
            self._upload.take(len(data))
        return self.inner.create(name, data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(name, offset, length)
        if self._download is not None:
            self._download.take(len(data))
        return data

    def __repr__(self) -> str:
        return (f"RateLimitedBackend({self.inner!r}, upload={self.upload_bytes_per_second}, "
                f"download={self.download_bytes_per_second})")
