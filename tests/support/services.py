"""Helpers for tests that need a real service (Redis, PostgreSQL, S3 server, promtool...).

A test that needs a service calls `require_service`: locally a missing service skips the
test with the reason; in CI (`CI=true`) it fails, so a green CI run means the test ran.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import closing

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def require_service(name: str, available: bool, hint: str = "") -> None:
    if available:
        return
    message = f"{name} is not available{': ' + hint if hint else ''}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a needed service must be present)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.05)
    return False


def redis_available(url: str = REDIS_URL) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False
