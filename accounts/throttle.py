"""Throttling of failed authentication, per client.

Contract:
* `client_ip(request)` is who "a client" is: `REMOTE_ADDR`, or behind
  `TRUSTED_PROXY_COUNT` reverse proxies the address the outermost trusted proxy saw (from
  `X-Forwarded-For`, which is otherwise never believed: any client can write it).
* `record_failure(request)` counts one failed authentication of that client (an unknown,
  expired or revoked API token, a wrong metrics token) and returns None while the client
  is within `AUTH_FAILURE_LIMIT` failures per `AUTH_FAILURE_WINDOW_SECONDS`, else the
  seconds until its window ends. Callers then answer 429 with that `Retry-After` instead of
  401.
* Only failures are counted, and only after the token was looked up: a valid token never
  touches the counter and is never refused by it, even from a client that is over its
  limit (a misconfigured script next to a working one must not lock the working one out).

The counter lives in the Django cache (`CACHES["default"]`: Redis in every multi-process
deployment), so every gunicorn worker and API replica adds to the same number; Redis `INCR`
makes the count exact under concurrency. A window opens at a client's first failure and
lasts `AUTH_FAILURE_WINDOW_SECONDS`; `Retry-After` is the time left in it.

If the cache cannot be reached the failure is still a 401 (the token is refused either
way) and a warning is logged: valid requests never depend on the cache.

Admin password logins are throttled by django-axes instead (settings `AXES_*`), with
`admin_lockout_response` rendering its lockout in the platform's error shape.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from typing import Callable

from django.conf import settings
from django.core.cache import cache

from storage_platform.errors import error_response

logger = logging.getLogger(__name__)

KEY_PREFIX = "auth-failures"
UNKNOWN_CLIENT = "unknown"
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^0-9A-Za-z.:_-]")


def client_ip(request) -> str | None:
    """The client's IP address (see the module docstring), or None when the request has none
    (a unix socket, a request built in code): the audit log and django-axes store it as an
    IP column, which refuses anything else."""
    meta = request.META
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            # A malformed entry counts against the proxy rather than trusting garbage.
            candidate = _valid_ip(forwarded[-min(hops, len(forwarded))])
            if candidate:
                return candidate
    return _valid_ip(meta.get("REMOTE_ADDR", ""))


def _valid_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_address(request) -> str:
    """Who failures are counted against: the client's IP, else `UNKNOWN_CLIENT`."""
    return client_ip(request) or UNKNOWN_CLIENT


def record_failure(request, *, clock: Callable[[], float] = time.time) -> int | None:
    """Count one failed authentication; the seconds to wait when over the limit, else None."""
    window = settings.AUTH_FAILURE_WINDOW_SECONDS
    now = clock()
    client = _UNSAFE_KEY_CHARACTERS.sub("_", client_address(request))[:64]
    try:
        # The window opens at the client's first failure: `add` is atomic (SET NX), so
        # concurrent first failures agree on one start, and the count is keyed by it.
        window_start = cache.get_or_set(f"{KEY_PREFIX}:{client}:start", now, timeout=window)
        key = f"{KEY_PREFIX}:{client}:{window_start!r}"
        cache.add(key, 0, timeout=window)
        count = cache.incr(key)
    except Exception as error:  # noqa: BLE001 - any cache failure: refuse with 401, never 500
        logger.warning("failed-authentication counter unavailable (%s); answering 401 without throttling",
                       type(error).__name__)
        return None
    if count <= settings.AUTH_FAILURE_LIMIT:
        return None
    return max(1, math.ceil(window_start + window - now))


def throttled_message(wait: int) -> str:
    return f"Too many failed authentication attempts from this client; retry in {wait} s."


def throttled_response(wait: int):
    """A plain Django 429 in the error shape, for views outside DRF (/metrics)."""
    response = error_response("too_many_failures", throttled_message(wait), 429, {"retry_after": wait})
    response["Retry-After"] = str(wait)
    return response


def admin_lockout_response(request, original_response=None, credentials=None):
    """django-axes' `AXES_LOCKOUT_CALLABLE`: a locked-out admin login, in the error shape."""
    wait = int(settings.AXES_COOLOFF_TIME.total_seconds())
    response = error_response(
        "too_many_failures",
        f"Too many failed login attempts from this client; retry in {wait} s or ask an administrator "
        "to unlock it (manage.py axes_reset_ip).",
        429, {"retry_after": wait},
    )
    response["Retry-After"] = str(wait)
    return response
