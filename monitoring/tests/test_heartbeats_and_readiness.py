"""Worker heartbeats and the readiness gauge."""

from __future__ import annotations

import datetime
import time

import pytest
from prometheus_client import CollectorRegistry

from monitoring import heartbeat
from monitoring.collectors import CatalogCollector
from monitoring.exposition import render
from monitoring.models import WorkerHeartbeat
from monitoring.readiness import ReadinessCollector
from monitoring.tests.factories import NOW, samples, value


def scrape(clock) -> dict:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(clock=clock))
    return samples(render(registry.collect()))


@pytest.mark.django_db
def test_alive_workers_are_those_with_a_recent_heartbeat(settings):
    settings.JOB_STALE_AFTER_SECONDS = 120
    heartbeat.beat("celery@fresh", "backup", now=NOW - datetime.timedelta(seconds=30))
    heartbeat.beat("celery@silent", "backup", now=NOW - datetime.timedelta(minutes=10))
    heartbeat.beat("celery@stopped", "backup", now=NOW - datetime.timedelta(seconds=5))
    heartbeat.mark_stopped("celery@stopped", now=NOW)
    heartbeat.beat("celery@long-gone", "backup", now=NOW - datetime.timedelta(days=3))

    parsed = scrape(lambda: NOW)

    assert value(parsed, "backup_workers_alive") == 1
    seen = {dict(labels)["worker"] for name, labels in parsed if name == "backup_worker_last_heartbeat_timestamp"}
    # A silent worker stays visible (its heartbeat ages, the alert can fire); a cleanly
    # stopped one and one gone for more than a day leave the metrics.
    assert seen == {"celery@fresh", "celery@silent"}


@pytest.mark.django_db
def test_no_worker_at_all_reports_zero_alive():
    assert value(scrape(lambda: NOW), "backup_workers_alive") == 0


@pytest.mark.django_db
def test_beat_updates_one_row_per_worker_and_revives_a_stopped_one():
    heartbeat.beat("celery@node-1", "backup", now=NOW - datetime.timedelta(minutes=1))
    heartbeat.mark_stopped("celery@node-1", now=NOW - datetime.timedelta(seconds=30))
    heartbeat.beat("celery@node-1", "backup", now=NOW)

    [row] = WorkerHeartbeat.objects.all()
    assert row.last_seen_at == NOW and row.stopped_at is None and row.queues == "backup"


@pytest.mark.django_db(transaction=True)
def test_heartbeat_thread_beats_until_stopped():
    thread = heartbeat.HeartbeatThread("celery@thread", "default", interval=0.05)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not WorkerHeartbeat.objects.filter(worker="celery@thread").exists():
            time.sleep(0.05)
        first = WorkerHeartbeat.objects.get(worker="celery@thread").last_seen_at
        while time.monotonic() < deadline and WorkerHeartbeat.objects.get(worker="celery@thread").last_seen_at == first:
            time.sleep(0.05)
        assert WorkerHeartbeat.objects.get(worker="celery@thread").last_seen_at > first
    finally:
        thread.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()


class Ticking:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def readiness(collector) -> dict[str, float]:
    [family] = list(collector.collect())
    return {sample.labels["component"]: sample.value for sample in family.samples}


def test_readiness_reports_each_component_and_failures_as_zero():
    def broken():
        raise ConnectionError("redis://user:secret@broker:6379 unreachable")

    collector = ReadinessCollector({"database": lambda: True, "broker": broken, "storage": lambda: {"ok": False}})
    assert readiness(collector) == {"database": 1.0, "broker": 0.0, "storage": 0.0}


def test_readiness_understands_the_status_answers_of_ready():
    collector = ReadinessCollector({
        "database": lambda: {"status": "ok"},
        "broker": lambda: {"status": "failing", "error": "timeout"},
        "storage": lambda: {"status": "unknown"},
    })
    # "unknown" is not a failure (/ready answers 200 then), so it does not page.
    assert readiness(collector) == {"database": 1.0, "broker": 0.0, "storage": 1.0}


def test_readiness_failure_is_logged_without_the_error_text(caplog):
    def broken():
        raise ConnectionError("redis://user:secret@broker:6379 unreachable")

    readiness(ReadinessCollector({"broker": broken}))
    assert "ConnectionError" in caplog.text
    assert "secret" not in caplog.text


def test_readiness_results_are_cached_briefly_and_then_refreshed():
    calls = []
    clock = Ticking()
    collector = ReadinessCollector({"storage": lambda: calls.append(1) or True}, clock=clock)

    readiness(collector)
    clock.now += 5
    readiness(collector)
    assert len(calls) == 1
    clock.now += 6
    readiness(collector)
    assert len(calls) == 2


def test_a_hanging_check_times_out_as_not_ready(monkeypatch):
    from monitoring import readiness as module

    monkeypatch.setattr(module, "CHECK_TIMEOUT_SECONDS", 0.2)
    started = time.monotonic()
    result = readiness(ReadinessCollector({"storage": lambda: time.sleep(1) or True}))
    assert result == {"storage": 0.0}
    assert time.monotonic() - started < 0.9


@pytest.mark.django_db
def test_default_checks_see_the_test_database_and_the_local_repository():
    result = readiness(ReadinessCollector())
    assert result["database"] == 1.0
    assert result["storage"] == 1.0
    assert set(result) == {"database", "broker", "storage"}
