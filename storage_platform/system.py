"""System endpoints, no token needed: `/health`, `/ready`, `/version`.

* `/health` is liveness: the process answers. It touches no service, so a database outage
  does not make an orchestrator restart healthy API processes in a loop.
* `/ready` is readiness: database, broker and storage each checked with a short timeout;
  200 when all are usable, 503 naming the failing parts otherwise. Storage reports
  `unknown` (not failing) when the storage layer offers no health check. Its `components`
  object says whether the background parts do their work (worker and beat liveness, verify
  schedule; `monitoring.liveness`); it never changes the status code, which is about
  serving traffic.
* `/version`: platform version, git revision when known, applied migrations per app and the
  number of unapplied ones (non-zero during an upgrade).

Answers never include connection URLs or credentials; error texts are redacted.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import time
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from storage_platform.logging import redact

BROKER_TIMEOUT_SECONDS = 2.0
_URL_CREDENTIALS = re.compile(r"://[^/@\s]*@")


def _error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return redact(_URL_CREDENTIALS.sub("://***@", text))[:300]


def check_database() -> dict:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok"}


def check_broker() -> dict:
    from kombu import Connection

    connection = Connection(
        settings.CELERY_BROKER_URL,
        transport_options=dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})),
        connect_timeout=BROKER_TIMEOUT_SECONDS,
    )
    try:
        # One attempt: readiness must answer quickly, the probe itself retries.
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        transport = connection.transport_cls if isinstance(connection.transport_cls, str) else "broker"
    finally:
        connection.release()
    return {"status": "ok", "transport": transport}


def check_storage() -> dict:
    try:
        module = importlib.import_module("backups.storage")
        storage_health = module.storage_health
    except (ImportError, AttributeError):
        return {"status": "unknown", "reason": "storage health check not available"}
    result = storage_health()
    if isinstance(result, tuple):  # backups.storage.storage_health() -> (ok, message)
        return {"status": "ok" if result[0] else "failing", "message": result[1]}
    if isinstance(result, dict):
        healthy = result.get("ok", result.get("status", "ok") in ("ok", True))
        details = {key: value for key, value in result.items() if key not in ("ok", "status")}
        return {"status": "ok" if healthy else "failing", **details}
    return {"status": "ok" if result in (None, True) else "failing"}


READINESS_CHECKS = {"database": check_database, "broker": check_broker, "storage": check_storage}


@require_safe
@never_cache
def health(request):
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def ready(request):
    checks = {}
    for name, check in READINESS_CHECKS.items():
        started = time.monotonic()
        try:
            checks[name] = check()
        except Exception as error:  # noqa: BLE001 - any failure of a dependency means "not ready"
            checks[name] = {"status": "failing", "error": _error_text(error)}
        checks[name]["seconds"] = round(time.monotonic() - started, 3)
    failing = [name for name, result in checks.items() if result["status"] == "failing"]
    body = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": checks,
            "components": _components(database_ok="database" not in failing)}
    return JsonResponse(body, status=503 if failing else 200)


def _components(database_ok: bool) -> dict:
    from monitoring.liveness import components

    if not database_ok:
        return {"error": "the database is unreachable; component states are unknown"}
    try:
        return components()
    except Exception as error:  # noqa: BLE001 - readiness must answer even if this read fails
        return {"error": _error_text(error)}


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """`GIT_REVISION` from the environment (set by image builds), else read from .git."""
    if os.environ.get("GIT_REVISION"):
        return os.environ["GIT_REVISION"]
    git_dir = Path(settings.BASE_DIR) / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        ref_file = git_dir / ref
        if ref_file.exists():
            return ref_file.read_text().strip()
        for line in (git_dir / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        return None
    return None


def schema_revision() -> dict:
    from django.db.migrations.executor import MigrationExecutor

    connection = connections["default"]
    executor = MigrationExecutor(connection)
    applied = {}
    for app_label, migration_name in sorted(executor.loader.applied_migrations):
        # Names are zero-padded and ordered, so the last applied is the highest.
        applied[app_label] = max(applied.get(app_label, ""), migration_name)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return {"applied": applied, "pending": len(pending)}


@require_safe
@never_cache
def version(request):
    body = {
        "version": settings.SPECTACULAR_SETTINGS.get("VERSION", "unknown"),
        "git_revision": git_revision(),
    }
    try:
        body["schema"] = schema_revision()
    except Exception as error:  # noqa: BLE001 - the database may be down; version still answers
        body["schema"] = {"error": _error_text(error)}
    return JsonResponse(body)
