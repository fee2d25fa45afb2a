"""`platform_ready{component}`: the `/ready` checks (database, broker, storage) as a gauge.

The checks of `/ready` are reused (`storage_platform.system.READINESS_CHECKS`, or its
`check_<component>` functions); the small equivalents here are used when that module has none.
A check answers `{"status": "ok" | "failing" | "unknown"}` (a bool or {"ok": bool} is
accepted too); raising means failing. "unknown" (the storage layer has no health check of
its own) falls back to the local check here, so the gauge is always 0 or 1.

Why cached: Prometheus scrapes every 15-30 s from possibly several servers, and a broker or
S3 round trip per scrape adds latency for nothing. Each result is reused for
`CACHE_SECONDS` in this process (a current-state gauge, not a counter, so per-process memory
is fine). Why a timeout: a hung storage endpoint must not hang `/metrics` (the scrape would
time out and every metric would be lost, not just this one).
"""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)

COMPONENTS = ("database", "broker", "storage")
CACHE_SECONDS = 10.0
CHECK_TIMEOUT_SECONDS = 3.0

_executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ready-check")


def check_database() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


def check_broker() -> bool:
    from kombu import Connection

    from storage_platform.celery import app

    with Connection(app.conf.broker_url, connect_timeout=2, transport_options=app.conf.broker_transport_options) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return True


def check_storage() -> bool:
    try:
        storage_health = importlib.import_module("backups.storage").storage_health
    except (ImportError, AttributeError):
        storage_health = None
    if storage_health is not None:
        return storage_health()
    from django.core.files.storage import FileSystemStorage, storages

    storage = storages["backups"]
    if isinstance(storage, FileSystemStorage):
        # An empty repository directory may not exist yet; what matters is that it can be.
        location = storage.location
        while not os.path.exists(location):
            location = os.path.dirname(location)
        return os.path.isdir(location) and os.access(location, os.W_OK)
    storage.listdir("")
    return True


LOCAL_CHECKS: dict[str, Callable[[], object]] = {
    "database": check_database, "broker": check_broker, "storage": check_storage,
}


def _platform_check(component: str) -> Callable[[], object]:
    """The `/ready` check of `storage_platform.system` if it exists, else ours."""
    try:
        system = importlib.import_module("storage_platform.system")
    except ImportError:
        return LOCAL_CHECKS[component]
    checks = getattr(system, "READINESS_CHECKS", None) or {}
    check = checks.get(component) or getattr(system, f"check_{component}", None)
    return check if callable(check) else LOCAL_CHECKS[component]


def _verdict(outcome: object) -> bool | None:
    """True usable, False failing, None unknown."""
    if isinstance(outcome, dict):
        if "status" in outcome:
            status = outcome["status"]
            return None if status == "unknown" else status in ("ok", True)
        return bool(outcome.get("ok", outcome.get("ready", False)))
    return bool(outcome)


class ReadinessCollector:
    """Yields `platform_ready{component}` (1 ready, 0 not) for database, broker and storage."""

    def __init__(self, checks: dict[str, Callable[[], object]] | None = None, clock: Callable[[], float] = time.monotonic):
        self._checks = checks
        self._clock = clock
        self._cache: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return []

    def _call(self, component: str, check: Callable[[], object]) -> bool | None:
        if component == "database":
            # Django connections are per thread: run it here, not in the pool.
            return _verdict(check())
        return _verdict(_executor.submit(check).result(timeout=CHECK_TIMEOUT_SECONDS))

    def _run(self, component: str) -> float:
        check = self._checks[component] if self._checks else _platform_check(component)
        try:
            verdict = self._call(component, check)
            if verdict is None and not self._checks and check is not LOCAL_CHECKS[component]:
                verdict = self._call(component, LOCAL_CHECKS[component])
            # Still unknown: nothing says it fails (as /ready, which answers 200 then).
            return 0.0 if verdict is False else 1.0
        except Exception as error:  # any failure means "not ready"; only the type is logged
            logger.warning("readiness check %s failed: %s", component, type(error).__name__)
            return 0.0

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("platform_ready", "1 when the component answers the /ready check.", labels=["component"])
        now = self._clock()
        with self._lock:
            for component in (self._checks or COMPONENTS):
                cached = self._cache.get(component)
                if cached is None or now - cached[1] >= CACHE_SECONDS:
                    cached = (self._run(component), now)
                    self._cache[component] = cached
                gauge.add_metric([component], cached[0])
        yield gauge
