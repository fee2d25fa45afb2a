"""A real platform server process (gunicorn, as `make run` starts it) over the test database,
for tests that drive the platform from outside: the command-line client and the browser.

    @pytest.mark.django_db(transaction=True)
    def test_volumes_list(platform_server, tokens):
        run = subprocess.run([sys.executable, "-m", "storagectl", "--url", platform_server.url, ...])

* `platform_server` (session): gunicorn on a free loopback port, one worker process with
  threads, sharing with the test process the test database (SQLite file or PostgreSQL test
  database, as the Celery worker fixture does: tests need `transactional_db` so their rows are
  committed), `DATA_DIR` (volume pool, repository, keys) and the broker (`TEST_REDIS_URL`), so a
  `celery_worker` started by the test runs the jobs this server queues. Static files (admin,
  Swagger UI, ReDoc) are collected into `STATIC_ROOT` once and served by WhiteNoise, as in
  production. `.url`, `.log()`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.fixtures_celery import BASE_DIR, platform_process_env
from tests.support.services import REDIS_URL, free_port, redis_available, require_service

READY_TIMEOUT_SECONDS = 45


class ServerProcess:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path):
        self.url, self.process, self.log_path = url, process, log_path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self) -> None:
        import requests

        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn not ready after {READY_TIMEOUT_SECONDS} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def platform_server(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.core.management import call_command

    require_service("Redis", redis_available(REDIS_URL), f"{REDIS_URL} (set TEST_REDIS_URL)")
    # Source maps are for debugging in a browser's developer tools; leaving them out halves the
    # time WhiteNoise spends compressing the sidecar's bundles.
    call_command("collectstatic", interactive=False, verbosity=0, ignore_patterns=["*.map"])
    with django_db_blocker.unblock():
        env = platform_process_env(REDIS_URL)
    port = free_port()
    log_path = tmp_path_factory.mktemp("platform-server") / "gunicorn.log"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1",
               "--worker-class", "gthread", "--threads", "8", "--timeout", "120", "--access-logfile", "-"]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
    server.wait_ready()
    yield server
    server.stop()
