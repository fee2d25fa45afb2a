"""`RetryingBackend`: retries transient storage failures with exponential backoff.

Only `BackendUnavailable` (network errors, 5xx, throttling, a stale NFS handle) is retried;
everything else (missing object, access denied, corrupt data) fails at once. Every backend
operation is safe to retry: objects are immutable and content-addressed, `put` is atomic,
`delete` of a missing object succeeds.

The delay before attempt n (n = 1, 2, ...) is "full jitter" (AWS architecture blog,
"Exponential Backoff And Jitter"): uniform in [0, min(max_delay, base_delay * 2**(n-1))].
Jitter spreads the retries of many workers hit by the same outage so they do not stampede
the storage when it comes back. `sleep` and `random` are injected so tests are instant and
deterministic.
"""

from __future__ import annotations

import logging
import random as random_module
import time
from collections.abc import Callable, Iterator

from ..backend import Backend, BackendWrapper, retention_arguments
from ..errors import BackendUnavailable

log = logging.getLogger(__name__)

#: Defaults: 10 attempts, waits capped at 0.25 s * 2^(n-1) and 30 s. The longest possible
#: wait is about 92 s per call (half that on average): enough to ride out an S3 failover or
#: a restarted MinIO without failing a long backup, short enough that a real outage fails
#: the job (which has its own, slower retries) within minutes.
DEFAULT_ATTEMPTS = 10
DEFAULT_BASE_DELAY = 0.25
DEFAULT_MAX_DELAY = 30.0


class RetryingBackend(BackendWrapper):
    """Wraps `inner`; each operation is tried up to `attempts` times in all."""

    def __init__(self, inner: Backend, attempts: int = DEFAULT_ATTEMPTS, base_delay: float = DEFAULT_BASE_DELAY,
                 max_delay: float = DEFAULT_MAX_DELAY, *, sleep: Callable[[float], None] = time.sleep,
                 random: Callable[[], float] = random_module.random):
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must not be negative")
        super().__init__(inner)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._random = random
        #: Count of retries done (for tests and metrics).
        self.retries = 0

    def delay_before_retry(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return ceiling * self._random()

    def _call(self, operation: str, name: str, function: Callable, *arguments, **keywords):
        for attempt in range(1, self.attempts + 1):
            try:
                return function(*arguments, **keywords)
            except BackendUnavailable as error:
                if attempt == self.attempts:
                    log.warning("storage %s %s failed after %d attempts: %s", operation, name,
                                attempt, error.message)
                    raise
                delay = self.delay_before_retry(attempt)
                log.info("storage %s %s failed (%s); retry %d/%d in %.2fs", operation, name,
                         error.message, attempt, self.attempts - 1, delay)
                self.retries += 1
                self._sleep(delay)

    def put(self, name: str, data: bytes, retention=None) -> None:
        return self._call("put", name, self.inner.put, name, data,
                          **retention_arguments(retention))

    def put_spool(self, name: str, spool, retention=None) -> None:
        return self._call("put", name, self.inner.put_spool, name, spool,
                          **retention_arguments(retention))

    def create(self, name: str, data: bytes) -> bool:
        return self._call("create", name, self.inner.create, name, data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call("get", name, self.inner.get, name, offset, length)

    def list(self, prefix: str = "") -> Iterator[str]:
        # A listing that fails halfway is restarted from the beginning; names already
        # yielded are not yielded again, so the "each name once" contract holds.
        seen: set[str] = set()
        for attempt in range(1, self.attempts + 1):
            try:
                for name in self.inner.list(prefix):
                    if name not in seen:
                        seen.add(name)
                        yield name
                return
            except BackendUnavailable as error:
                if attempt == self.attempts:
                    raise
                delay = self.delay_before_retry(attempt)
                log.info("storage list %s failed (%s); retry %d/%d in %.2fs", prefix,
                         error.message, attempt, self.attempts - 1, delay)
                self.retries += 1
                self._sleep(delay)

    def delete(self, name: str) -> None:
        return self._call("delete", name, self.inner.delete, name)

    def exists(self, name: str) -> bool:
        return self._call("exists", name, self.inner.exists, name)

    def size(self, name: str) -> int:
        return self._call("size", name, self.inner.size, name)

    def object_lock_enabled(self) -> bool:
        return self._call("object lock configuration", "", self.inner.object_lock_enabled)

    def retention(self, name: str):
        return self._call("retention", name, self.inner.retention, name)

    def extend_retention(self, name: str, retention) -> None:
        # PutObjectRetention to the same or a later date is idempotent.
        return self._call("extend retention", name, self.inner.extend_retention, name, retention)

    def __repr__(self) -> str:
        return f"RetryingBackend({self.inner!r}, attempts={self.attempts})"
