"""Fixtures of the volumes tests: a private pool root per test, and a volume made through the API."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def volume_root(settings, tmp_path):
    """Each test gets its own pool root, so tests never see each other's folders."""
    settings.VOLUME_ROOT = tmp_path / "pool"
    return settings.VOLUME_ROOT


@pytest.fixture
def admin(api):
    return api("admin")


@pytest.fixture
def create_volume(admin):
    """Create a volume through the API and return its JSON."""

    def create(name: str = "data-1", size_gb: int = 1, **fields) -> dict:
        response = admin.post("/api/v1/volumes", {"name": name, "size_gb": size_gb, **fields}, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return create


def assert_error(response, status_code: int, code: str) -> dict:
    """The response is the platform's one error shape with this status and code."""
    assert response.status_code == status_code, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"code", "message", "detail"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


class GunicornServer:
    """A real `gunicorn` (sync workers, so requests run in parallel in separate processes)
    serving the test database; see the `gunicorn_server` fixture."""

    def __init__(self, url: str, process, log_path):
        self.url = url
        self.process = process
        self.log_path = log_path

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def gunicorn_server(django_db_setup, tmp_path_factory):
    """Gunicorn with two workers on a free port, sharing the test database (SQLite file or
    PostgreSQL `test_...`), stopped after the module. Tests that use it need
    `django_db(transaction=True)` so their rows are committed and visible to it. Volumes keep
    their absolute `path`, so the per-test pool root does not matter to the server.
    """
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import requests
    from django.conf import settings

    from tests.support.fixtures_celery import BASE_DIR, database_url_for_worker
    from tests.support.services import free_port, wait_for_port

    port = free_port()
    scratch = tmp_path_factory.mktemp("gunicorn")
    log_path = scratch / "gunicorn.log"
    environment = {**os.environ, "DATABASE_URL": database_url_for_worker(), "DATA_DIR": str(settings.DATA_DIR),
                   "VOLUME_ROOT": str(scratch / "pool"), "SECRET_KEY": settings.SECRET_KEY,
                   "REPOSITORY_KEY": settings.REPOSITORY_KEY, "PYTHONUNBUFFERED": "1"}
    command = [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", "2", "--timeout", "60", "--graceful-timeout", "5", "--access-logfile", "-"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = GunicornServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        assert wait_for_port("127.0.0.1", port, timeout=60), server.log()[-3000:]
        assert requests.get(f"{server.url}/health", timeout=30).status_code == 200, server.log()[-3000:]
        yield server
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the session this fixture started
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
