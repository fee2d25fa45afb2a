"""Fixtures for the backups app's tests (jobs, services, API).

* `sent_messages`: replaces the Celery publisher with a recorder, so tests see what would be
  sent (job id, queue, countdown) without a broker; on-commit callbacks run at once.
* `volume`: an available volume with a few files (via the shared `make_volume`).
* `own_repository` (tests/support/fixtures_repository.py): a fresh local repository per test.
* `use_runner(kind, function)`: run jobs of `kind` with `function` in this test, for tests
  about the state machine rather than about the engine.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_heartbeat_writes_inside_a_test_transaction(request, settings):
    """Jobs run in-process inside a test's transaction: the heartbeat thread's own database
    connection cannot see the uncommitted job row, so a heartbeat would find no job and
    declare it lost. Such tests are about the state machine, not liveness: no heartbeat
    during them. Tests with committed rows (`transactional_db`, real workers) keep them."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(
        marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))
    if not transactional:
        settings.JOB_HEARTBEAT_SECONDS = 3600
        settings.JOB_PROGRESS_SECONDS = 3600


@pytest.fixture
def sent_messages(monkeypatch):
    from backups import jobs

    sent: list[tuple[str, str, float | None]] = []
    monkeypatch.setattr(jobs.publish, "publisher", lambda job_id, queue, countdown: sent.append((job_id, queue, countdown)))
    return sent


@pytest.fixture
def volume(make_volume):
    return make_volume("vol-a", files={"a.txt": b"alpha", "dir/b.txt": b"beta"})


@pytest.fixture
def use_runner(monkeypatch):
    from backups import runners

    def install(kind: str, function) -> None:
        monkeypatch.setitem(runners.RUNNERS, kind, function)

    return install
