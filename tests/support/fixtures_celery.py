"""Real Celery worker processes on real Redis, for integration and fault tests.

    @pytest.mark.slow
    @pytest.mark.django_db(transaction=True)
    def test_backup_survives_a_worker_crash(celery_worker_factory):
        worker = celery_worker_factory(env={"JOB_HEARTBEAT_SECONDS": "1"})
        ... trigger a backup, wait until its job is running ...
        worker.kill(signal.SIGKILL)      # the whole worker: parent and pool children
        worker.restart()                 # same queues, same settings, waits until ready
        ... poll the job to `succeeded` ...

Fixtures:

* `celery_worker`: one started worker with the default queues (`backup`, `maintenance`,
  `default`); stopped after the test.
* `celery_worker_factory(queues=..., concurrency=1, broker_url=None, env=None, name=None)`:
  start more, or with other settings; all are stopped after the test.

What the worker shares with the test: the test database (SQLite: the test DB *file*, which
is why tests need `transactional_db`, so their rows are committed and visible; PostgreSQL:
the `test_...` database), `DATA_DIR`, `VOLUME_ROOT`, `REPOSITORY_DIR` and `REPOSITORY_KEY`,
and the broker (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379/0`, or `broker_url`, e.g. a
private `redis-server` for outage tests). The test process's own Celery app is pointed at the
same broker for the duration of the test, so `services.trigger_backup` reaches the worker.

Before the first worker starts, the queues on that broker are emptied (stale messages of an
earlier run would name jobs that do not exist in this test's database). Redis is required
through `require_service`: a skip locally, a failure in CI.

Handle (`WorkerProcess`): `.kill(sig=SIGKILL)` signals the whole process group (parent and
pool children); `.kill_children(sig=SIGKILL)` only the pool processes (the parent survives and,
with `task_reject_on_worker_lost`, requeues the message at once); `.stop()` warm shutdown with
a SIGKILL fallback; `.restart()` stop (if alive) + start + wait ready; `.log()` the worker's
output so far (shown in the failure report when a worker does not come up); `.pid`, `.alive`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.services import REDIS_URL, redis_available, require_service

DEFAULT_QUEUES = ("backup", "maintenance", "default")
READY_TIMEOUT_SECONDS = 45
BASE_DIR = Path(__file__).resolve().parents[2]


def _celery_executable() -> list[str]:
    candidate = Path(sys.executable).with_name("celery")
    return [str(candidate)] if candidate.exists() else [sys.executable, "-m", "celery"]


def database_url_for_worker() -> str:
    """A DATABASE_URL naming the database the test process is using right now."""
    from django.db import connection

    settings_dict = connection.settings_dict
    if settings_dict["ENGINE"].endswith("sqlite3"):
        name = settings_dict["NAME"]
        if not name or name == ":memory:" or str(name).startswith("file:"):
            raise RuntimeError("a worker process cannot share an in-memory SQLite database; set a file TEST NAME")
        return f"sqlite:///{Path(name).resolve()}"
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


def platform_process_env(broker_url: str) -> dict[str, str]:
    """The environment of a platform process (worker, server) started by a test: the test's
    database, data folders, keys and `broker_url`."""
    from django.conf import settings

    return {
        **os.environ,
        "DATABASE_URL": database_url_for_worker(),
        "CELERY_BROKER_URL": broker_url,
        "DATA_DIR": str(settings.DATA_DIR),
        "VOLUME_ROOT": str(settings.VOLUME_ROOT),
        "REPOSITORY_DIR": str(settings.REPOSITORY_DIR),
        "REPOSITORY_KEY": settings.REPOSITORY_KEY,
        "SECRET_KEY": settings.SECRET_KEY,
        "PYTHONUNBUFFERED": "1",
    }


def purge_queues(broker_url: str, queues) -> None:
    """Drop pending and unacknowledged messages of `queues` on a Redis broker."""
    import redis

    client = redis.Redis.from_url(broker_url, socket_connect_timeout=2)
    try:
        keys = list(queues) + ["unacked", "unacked_index", "unacked_mutex"]
        for queue in queues:  # kombu's priority sub-queues: "<queue>\x06\x16<n>"
            keys += [f"{queue}\x06\x16{priority}" for priority in (3, 6, 9)]
        client.delete(*keys)
    finally:
        client.close()


class WorkerProcess:
    """One `celery worker` process tree started for a test."""

    def __init__(self, *, env: dict[str, str], queues, concurrency: int, log_path: Path, name: str):
        self.env = env
        self.queues = list(queues)
        self.concurrency = concurrency
        self.log_path = log_path
        self.name = name
        self.process: subprocess.Popen | None = None
        self._log_offset = 0

    @property
    def nodename(self) -> str:
        return f"{self.name}@%h"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        return [*_celery_executable(), "-A", "storage_platform", "worker", "-Q", ",".join(self.queues),
                "-c", str(self.concurrency), "--without-gossip", "--without-mingle", "-P", "prefork",
                "-n", self.nodename, "--loglevel", "INFO", "-O", "fair"]

    def start(self) -> WorkerProcess:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        try:
            # Its own session, so kill() reaches the pool children too and a Ctrl-C of
            # pytest does not hit the worker first.
            self.process = subprocess.Popen(self.command(), cwd=BASE_DIR, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.wait_ready()
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Wait for the worker's "ready." line (written after it consumes its queues)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            with open(self.log_path, "rb") as handle:
                handle.seek(self._log_offset)
                if b" ready." in handle.read():
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"celery worker not ready after {timeout:.0f} s:\n{self.log()[-4000:]}")

    def children(self) -> list[int]:
        """Pids of the pool processes (children of the worker's main process)."""
        if not self.alive:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.process.pid:
                found.append(int(entry.name))
        return found

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole worker (main process and pool children) and reap it."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def kill_children(self, sig: int = signal.SIGKILL) -> list[int]:
        """Signal only the pool processes; the main process survives and replaces them."""
        pids = self.children()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return pids

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL for anything left after `timeout`."""
        if self.process is None or not self.alive:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # leftover pool children too
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def restart(self) -> WorkerProcess:
        self.stop()
        return self.start()


def _point_test_app_at(broker_url: str):
    """Make this process's Celery app publish to `broker_url`; returns a function that undoes it."""
    from storage_platform.celery import app

    previous = app.conf.broker_url, app.conf.broker_write_url

    def reset_pools():
        # Producers and connections are pooled per broker URL on first use; drop the app's
        # references so the next publish connects to the URL now configured. The old pools
        # are not closed: kombu keeps a global producer-pool registry keyed by connection,
        # and a closed pool found there again would fail with "Acquire on closed pool".
        app._pool = None
        try:
            app.amqp._producer_pool = None
        except AttributeError:
            pass

    # send_task publishes through a connection "for write", whose URL Celery resolves from
    # broker_write_url (defaulting to the broker URL seen when the app was configured).
    app.conf.broker_url = app.conf.broker_write_url = broker_url
    reset_pools()

    def undo():
        app.conf.broker_url, app.conf.broker_write_url = previous
        reset_pools()

    return undo


@pytest.fixture
def celery_worker_factory(transactional_db, tmp_path_factory):
    started: list[WorkerProcess] = []
    undo_broker = []
    purged: set[str] = set()
    log_dir = tmp_path_factory.mktemp("celery-workers")

    def start(*, queues=DEFAULT_QUEUES, concurrency: int = 1, broker_url: str | None = None,
              env: dict[str, str] | None = None, name: str | None = None) -> WorkerProcess:
        url = broker_url or REDIS_URL
        require_service("Redis", redis_available(url), f"{url} (set TEST_REDIS_URL)")
        if url not in purged:
            purge_queues(url, queues)
            purged.add(url)
        if not undo_broker:
            undo_broker.append(_point_test_app_at(url))
        worker_env = {**platform_process_env(url), **(env or {})}
        worker_name = name or f"sp-test-{uuid.uuid4().hex[:8]}"
        worker = WorkerProcess(env=worker_env, queues=queues, concurrency=concurrency,
                               log_path=log_dir / f"{worker_name}.log", name=worker_name)
        started.append(worker)
        return worker.start()

    yield start

    for worker in started:
        worker.stop()
    for undo in undo_broker:
        undo()


@pytest.fixture
def celery_worker(celery_worker_factory) -> WorkerProcess:
    return celery_worker_factory()
