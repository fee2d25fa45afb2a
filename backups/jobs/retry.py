"""How long a job waits before its next attempt after a transient error."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from django.conf import settings


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of
    `min(cap, base * 2**(n-1))` seconds. `jitter` returns a float in [0, 1); tests inject it."""

    base_seconds: float = 15.0
    cap_seconds: float = 900.0
    jitter: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(attempt - 1, 0)))
        return ceiling / 2 + self.jitter() * ceiling / 2


# The policy `state.retry_or_fail` uses when given none; tests replace it.
retry_policy = RetryPolicy(
    base_seconds=float(getattr(settings, "JOB_RETRY_BASE_SECONDS", 15)),
    cap_seconds=float(getattr(settings, "JOB_RETRY_CAP_SECONDS", 900)),
)
