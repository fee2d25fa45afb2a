"""A real Celery worker records heartbeats while idle and marks itself stopped on shutdown."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from monitoring.collectors import CatalogCollector
from monitoring.exposition import render
from monitoring.models import WorkerHeartbeat
from monitoring.tests.factories import samples, value

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROKER_URL = "redis://127.0.0.1:6379/3"  # the monitoring tests' Redis database


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    return predicate()


def test_idle_worker_beats_and_a_clean_stop_removes_it_from_the_alive_count(celery_worker_factory, settings):
    worker = celery_worker_factory(broker_url=BROKER_URL, env={"JOB_HEARTBEAT_SECONDS": "1"}, name="monitoring")

    row = wait_for(lambda: WorkerHeartbeat.objects.filter(worker__startswith="monitoring@").first())
    assert row is not None, worker.log()[-3000:]
    first_seen = row.last_seen_at
    assert wait_for(lambda: WorkerHeartbeat.objects.get(pk=row.pk).last_seen_at > first_seen, timeout=15)
    assert "backup" in row.queues
    assert value(samples(render(CatalogCollector().collect())), "backup_workers_alive") == 1

    worker.stop()

    assert wait_for(lambda: WorkerHeartbeat.objects.get(pk=row.pk).stopped_at is not None, timeout=15)
    parsed = samples(render(CatalogCollector(clock=timezone.now).collect()))
    assert value(parsed, "backup_workers_alive") == 0
    assert not any(name == "backup_worker_last_heartbeat_timestamp" for name, _ in parsed)
