"""METRICS_CACHE_SECONDS: scrapes serve one shared render of the catalog metrics until it is
older than that; then one process renders the next (in the background) while the previous
text is served. The clock is injected; nothing waits for time to pass."""

from __future__ import annotations

import re

import pytest

from monitoring import cached
from monitoring.models import CatalogExposition
from monitoring.tests.factories import make_volume, samples, value

T0 = 1_800_000_000.0


def volume_count(text: str) -> float:
    return value(samples(text), "storage_volume_count")


def rendered_at(text: str) -> float:
    return value(samples(text), "storage_platform_catalog_rendered_timestamp")


@pytest.fixture
def cache_seconds(settings):
    settings.METRICS_CACHE_SECONDS = 60
    return 60


@pytest.mark.django_db
def test_without_the_setting_every_scrape_renders_the_catalog(settings):
    settings.METRICS_CACHE_SECONDS = 0
    make_volume("vol-1")
    assert volume_count(cached.catalog_text()) == 1
    make_volume("vol-2")
    assert volume_count(cached.catalog_text()) == 2
    assert not CatalogExposition.objects.exists()


@pytest.mark.django_db
def test_a_render_is_served_until_it_is_older_than_the_setting(cache_seconds):
    make_volume("vol-1")
    first = cached.catalog_text(clock=lambda: T0, background=False)
    assert volume_count(first) == 1 and rendered_at(first) == T0
    make_volume("vol-2")
    served = cached.catalog_text(clock=lambda: T0 + cache_seconds, background=False)
    assert served == first
    fresh = cached.catalog_text(clock=lambda: T0 + cache_seconds + 1, background=False)
    assert volume_count(fresh) == 2 and rendered_at(fresh) == T0 + cache_seconds + 1
    assert CatalogExposition.objects.get().refreshing_since is None


@pytest.mark.django_db
def test_while_another_process_renders_the_previous_text_is_served(cache_seconds):
    make_volume("vol-1")
    first = cached.catalog_text(clock=lambda: T0, background=False)
    make_volume("vol-2")
    later = T0 + cache_seconds + 5
    CatalogExposition.objects.update(refreshing_since=later - 1)  # another process's claim
    assert cached.catalog_text(clock=lambda: later, background=False) == first
    # A claim that outlived CLAIM_EXPIRES_SECONDS belongs to a process that died: taken over.
    much_later = later + cached.CLAIM_EXPIRES_SECONDS + 1
    assert volume_count(cached.catalog_text(clock=lambda: much_later, background=False)) == 2


@pytest.mark.django_db(transaction=True)
def test_a_stale_scrape_refreshes_in_the_background_and_answers_at_once(cache_seconds):
    make_volume("vol-1")
    first = cached.catalog_text(clock=lambda: T0)
    make_volume("vol-2")
    stale = cached.catalog_text(clock=lambda: T0 + cache_seconds + 1)
    assert stale == first  # served before the background render finished
    cached.wait_for_background_refresh(timeout=60)
    refreshed = cached.catalog_text(clock=lambda: T0 + cache_seconds + 2)
    assert volume_count(refreshed) == 2 and rendered_at(refreshed) == T0 + cache_seconds + 1


@pytest.mark.django_db
def test_the_metrics_view_serves_the_shared_render_with_live_readiness(client, cache_seconds):
    make_volume("vol-1")
    cached.catalog_text(background=False)
    body = CatalogExposition.objects.get().body
    CatalogExposition.objects.update(body=re.sub(r"(?m)^storage_volume_count .*$", "storage_volume_count 7", body))
    parsed = samples(client.get("/metrics").content.decode())
    assert value(parsed, "storage_volume_count") == 7
    assert any(name == "platform_ready" for name, _ in parsed)
