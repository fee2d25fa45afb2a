"""The container entrypoint's roles, run here as the image runs them (same commands, this
virtualenv instead of /opt/venv): `migrate` prepares an empty data directory, `api` serves
/health and /ready through gunicorn with the repository's gunicorn.conf.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.ops.collection import BIN_DIR, REPOSITORY_ROOT
from tests.ops.conftest import OPS_BROKER_URL
from tests.support.services import free_port, redis_available, require_service

ENTRYPOINT = str(REPOSITORY_ROOT / "deploy" / "docker" / "entrypoint.sh")


def container_environment(data_dir, port: int) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("DATABASE_URL", "DJANGO_", "S3_", "SQLITE_"))}
    environment.update({
        "PATH": f"{BIN_DIR}{os.pathsep}{environment.get('PATH', '')}",
        "DATA_DIR": str(data_dir), "PORT": str(port), "CELERY_BROKER_URL": OPS_BROKER_URL,
        "WEB_CONCURRENCY": "1", "ADMIN_TOKEN": "sbp_entrypoint-test-admin-token-000000",
    })
    return environment


def get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_migrate_then_api_roles_serve_health_and_ready(tmp_path):
    require_service("redis", redis_available(OPS_BROKER_URL))
    port = free_port()
    environment = container_environment(tmp_path / "data", port)
    migrate = subprocess.run([ENTRYPOINT, "migrate"], cwd=REPOSITORY_ROOT, env=environment,
                             capture_output=True, text=True, timeout=180)
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "data" / "db.sqlite3").exists()

    api = subprocess.Popen([ENTRYPOINT, "api"], cwd=REPOSITORY_ROOT, env=environment,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and api.poll() is None:
            try:
                status, body = get_json(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                time.sleep(0.3)
        assert status == 200 and body == {"status": "ok"}, "gunicorn did not come up"
        ready_status, ready = get_json(f"http://127.0.0.1:{port}/ready")
        assert ready_status == 200, ready
        assert (tmp_path / "data" / "static").is_dir(), "the api role collects static files first"
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        output = api.communicate(timeout=30)[0]
    assert "sbp_entrypoint-test-admin-token" not in output
