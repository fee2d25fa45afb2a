"""/health, /ready and /version: no token, real broker, 503 naming the failing part."""

import pytest

from tests.support.services import REDIS_URL, free_port, redis_available, require_service

pytestmark = pytest.mark.django_db


def test_health_needs_no_token_and_ignores_a_bad_one(client):
    assert client.get("/health").json() == {"status": "ok"}
    response = client.get("/health", HTTP_X_API_TOKEN="sbp_bogus-token-value-000000")
    assert response.status_code == 200


def test_health_answers_even_when_the_broker_is_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    assert client.get("/health").status_code == 200


def test_ready_is_200_with_database_and_real_redis(client, settings):
    require_service("redis", redis_available(REDIS_URL), REDIS_URL)
    settings.CELERY_BROKER_URL = REDIS_URL
    response = client.get("/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    assert body["checks"]["storage"]["status"] in ("ok", "unknown")


def test_ready_is_503_naming_the_broker_when_it_is_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://:secret-password@127.0.0.1:{free_port()}/0"
    response = client.get("/ready")
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"]["status"] == "failing"
    assert body["checks"]["broker"]["seconds"] < 10
    assert "secret-password" not in response.content.decode()


def test_ready_works_with_the_filesystem_broker(client, settings, tmp_path):
    folder = tmp_path / "broker"
    folder.mkdir()
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    assert client.get("/ready").json()["checks"]["broker"]["status"] == "ok"


def test_ready_reports_a_failing_storage_check(client, settings, monkeypatch):
    from storage_platform import system

    def broken_storage():
        raise OSError("repository directory is not writable")

    require_service("redis", redis_available(REDIS_URL), REDIS_URL)
    settings.CELERY_BROKER_URL = REDIS_URL
    monkeypatch.setitem(system.READINESS_CHECKS, "storage", broken_storage)
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["failing"] == ["storage"]
    assert "not writable" in response.json()["checks"]["storage"]["error"]


def test_version_reports_schema_revision(client):
    body = client.get("/version").json()
    assert body["version"]
    assert body["schema"]["applied"]["accounts"] >= "0001_initial"
    assert body["schema"]["pending"] == 0


def test_system_endpoints_refuse_mutations(client):
    assert client.post("/health").status_code == 405


@pytest.mark.slow
def test_make_run_starts_all_three_and_stops_on_sigterm(tmp_path):
    """scripts/run.sh on a fresh DATA_DIR: token files 0600 (paths printed, values never),
    /health and /ready answer, SIGTERM stops API, worker and beat with status 0."""
    import os
    import signal
    import stat
    import subprocess
    import time
    from pathlib import Path

    import requests

    from tests.support.services import wait_for_port

    require_service("redis", redis_available(REDIS_URL), REDIS_URL)
    root = Path(__file__).resolve().parent.parent
    port = free_port()
    environment = {key: value for key, value in os.environ.items()
                   if not key.endswith(("_TOKEN", "_TOKEN_FILE")) and key not in ("PORT", "DATABASE_URL")}
    environment.update(DATA_DIR=str(tmp_path), PORT=str(port), CELERY_BROKER_URL=REDIS_URL, WEB_CONCURRENCY="1",
                       VENV=str(Path(os.sys.executable).parent.parent))
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(["bash", "scripts/run.sh"], cwd=root, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for_port("127.0.0.1", port, timeout=60), log_path.read_text()[-3000:]
        # gunicorn's workers import Django after the port opens: a busy machine needs a while.
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=60).json() == {"status": "ok"}
        deadline = time.monotonic() + 30
        while (ready := requests.get(f"http://127.0.0.1:{port}/ready", timeout=30)).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.5)
        admin_token = (tmp_path / "tokens" / "admin").read_text().strip()
        assert stat.S_IMODE((tmp_path / "tokens" / "admin").stat().st_mode) == 0o600
        tokens = requests.get(f"http://127.0.0.1:{port}/api/v1/tokens", headers={"X-API-TOKEN": admin_token}, timeout=10)
        assert tokens.status_code == 200
        assert {"env-admin", "env-backup", "env-read"} <= {item["name"] for item in tokens.json()["results"]}
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
    output = log_path.read_text()
    assert status == 0, output[-3000:]
    assert str(tmp_path / "tokens" / "admin") in output and admin_token not in output
    # The whole session (gunicorn, worker, beat and their children) is gone: wait for the
    # process group to empty (children reaped by init may outlive run.sh by a moment).
    deadline = time.monotonic() + 10
    while _process_group_alive(process.pid):
        assert time.monotonic() < deadline, "run.sh left processes behind"
        time.sleep(0.05)


def _process_group_alive(group_id: int) -> bool:
    import os

    try:
        os.killpg(group_id, 0)
    except ProcessLookupError:
        return False
    return True
