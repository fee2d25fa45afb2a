"""The API under real gunicorn (the production server), for tests of what only it shows:
several worker processes sharing state, its access log, bodies read from a real socket.

    @pytest.mark.django_db(transaction=True)
    def test_throttle_is_shared_by_workers(gunicorn_server, tokens):
        server = gunicorn_server(workers=2, env={"AUTH_FAILURE_LIMIT": "5"})
        response = requests.get(f"{server.url}/api/v1/volumes", headers={...})
        assert "sbp_" not in server.log()

`gunicorn_server(workers=2, env=None)` starts `gunicorn -c gunicorn.conf.py` (the
repository's configuration, as `make run` and the container do) on a free port with the
access log on, against this test's database (rows must be committed: use
`transactional_db`), DATA_DIR, keys and the test Redis (`TEST_REDIS_URL`, as broker and
cache, with a key prefix of its own so counters never leak between tests). It waits until
`/health` answers. Handle: `.url`, `.log()` (access and error log so far), `.stop()`,
`.restart()` (fresh processes, same settings: a restart of the API). Stopped after the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.fixtures_celery import database_url_for_worker
from tests.support.services import REDIS_URL, free_port, redis_available, require_service

BASE_DIR = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 45


class GunicornServer:
    def __init__(self, *, env: dict[str, str], workers: int, log_path: Path):
        self.env = env
        self.workers = workers
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        return [str(gunicorn), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers), "--access-logfile", "-", "--error-logfile", "-",
                "storage_platform.wsgi:application"]

    def start(self) -> GunicornServer:
        with open(self.log_path, "ab") as log:
            # Its own session, so stop() reaches the workers too.
            self.process = subprocess.Popen(self.command(), cwd=BASE_DIR, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn not answering after {READY_TIMEOUT_SECONDS} s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def restart(self) -> GunicornServer:
        self.stop()
        return self.start()


@pytest.fixture
def gunicorn_server(transactional_db, tmp_path_factory):
    from django.conf import settings

    started: list[GunicornServer] = []
    log_dir = tmp_path_factory.mktemp("gunicorn")

    def start(*, workers: int = 2, env: dict[str, str] | None = None) -> GunicornServer:
        require_service("Redis", redis_available(REDIS_URL), f"{REDIS_URL} (set TEST_REDIS_URL)")
        inherited = {key: value for key, value in os.environ.items()
                     if not key.endswith(("_TOKEN", "_TOKEN_FILE")) and not key.startswith("DJANGO_")}
        server_env = {
            **inherited,
            "DJANGO_SETTINGS_MODULE": "storage_platform.settings",
            "DATABASE_URL": database_url_for_worker(),
            "CELERY_BROKER_URL": REDIS_URL,
            "CACHE_URL": REDIS_URL,
            "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
            "DATA_DIR": str(settings.DATA_DIR),
            "VOLUME_ROOT": str(settings.VOLUME_ROOT),
            "REPOSITORY_DIR": str(settings.REPOSITORY_DIR),
            "REPOSITORY_KEY": settings.REPOSITORY_KEY,
            "SECRET_KEY": settings.SECRET_KEY,
            "MAINTENANCE_FILE": str(log_dir / "maintenance"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        server = GunicornServer(env=server_env, workers=workers, log_path=log_dir / f"gunicorn-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start

    for server in started:
        server.stop()
