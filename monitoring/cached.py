"""The catalog part of `/metrics`, rendered at every scrape or served from a shared render.

Rendering the catalog metrics is linear in volumes and backups: ~4 s of CPU at 50,000
volumes and 150,000 backups (bench/catalog_scale.py), against a scrape budget of 250 ms.
With `METRICS_CACHE_SECONDS` > 0 a scrape serves the last rendered text instead, from one
database row (`CatalogExposition`) that every API process reads, so all processes answer
the same and a counter never appears to go down when Prometheus reaches another process.
When that text is older than `METRICS_CACHE_SECONDS`, the scrape that notices claims the
refresh (a conditional UPDATE, so one process renders at a time) and renders the next text
in a background thread; it and the scrapes after it serve the previous text meanwhile. Only
the very first scrape (no row yet) renders while the client waits.

Values are then up to `METRICS_CACHE_SECONDS` plus one render old;
`storage_platform_catalog_rendered_timestamp` says when the served text was rendered.
Readiness and process metrics are never cached (the view renders them live).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from monitoring.collectors import CATALOG_REGISTRY
from monitoring.exposition import render
from monitoring.models import CatalogExposition

logger = logging.getLogger(__name__)

ROW_ID = 1
# A claim older than this is abandoned (its process died mid-render): another may take over.
CLAIM_EXPIRES_SECONDS = 600

_last_refresh: threading.Thread | None = None


def render_catalog(registry=CATALOG_REGISTRY) -> str:
    return render(registry.collect())


def _rendered_at_family(rendered_at: float) -> str:
    return (
        "# HELP storage_platform_catalog_rendered_timestamp Unix time the served catalog metrics were rendered.\n"
        "# TYPE storage_platform_catalog_rendered_timestamp gauge\n"
        f"storage_platform_catalog_rendered_timestamp {rendered_at!r}\n"
    )


def refresh(clock: Callable[[], float] = time.time, registry=CATALOG_REGISTRY) -> CatalogExposition:
    """Render the catalog metrics now and store them (and release the refresh claim)."""
    started = clock()
    began = time.perf_counter()
    body = render_catalog(registry)
    seconds = time.perf_counter() - began
    fields = {"body": body, "rendered_at": started, "render_seconds": seconds, "refreshing_since": None}
    if not CatalogExposition.objects.filter(pk=ROW_ID).update(**fields):
        try:
            with transaction.atomic():
                CatalogExposition.objects.create(pk=ROW_ID, **fields)
        except IntegrityError:  # another process's first scrape created it meanwhile
            CatalogExposition.objects.filter(pk=ROW_ID).update(**fields)
    return CatalogExposition(pk=ROW_ID, body=body, rendered_at=started, render_seconds=seconds)


def _claim(now: float) -> bool:
    unclaimed = Q(refreshing_since__isnull=True) | Q(refreshing_since__lt=now - CLAIM_EXPIRES_SECONDS)
    return CatalogExposition.objects.filter(unclaimed, pk=ROW_ID).update(refreshing_since=now) == 1


def _refresh_in_background(clock, registry) -> threading.Thread:
    def run() -> None:
        try:
            refresh(clock, registry)
        except Exception:  # the next stale scrape claims again once the claim expires
            logger.exception("rendering the catalog metrics failed")
            CatalogExposition.objects.filter(pk=ROW_ID).update(refreshing_since=None)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name="metrics-catalog-render", daemon=True)
    thread.start()
    return thread


def wait_for_background_refresh(timeout: float | None = None) -> None:
    """Block until the refresh this process started (if any) has finished (tests, shutdown)."""
    if _last_refresh is not None:
        _last_refresh.join(timeout)


def catalog_text(*, clock: Callable[[], float] = time.time, registry=CATALOG_REGISTRY, background: bool = True) -> str:
    """The catalog metrics for this scrape (see the module doc for when they are rendered)."""
    global _last_refresh

    max_age = settings.METRICS_CACHE_SECONDS
    if max_age <= 0:
        return render_catalog(registry)
    now = clock()
    row = CatalogExposition.objects.filter(pk=ROW_ID).only("body", "rendered_at").first()
    if row is None:
        row = refresh(clock, registry)
    elif now - row.rendered_at > max_age and _claim(now):
        if background:
            _last_refresh = _refresh_in_background(clock, registry)
        else:
            row = refresh(clock, registry)
    return row.body + _rendered_at_family(row.rendered_at)
