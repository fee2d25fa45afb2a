"""A fresh deployment's first hour, as a new user lives it: `make run`'s processes (gunicorn
with 2 workers, a Celery worker with concurrency 2, beat) on an empty DATA_DIR, and the first
thing anyone does is back up everything at once. Every backup must complete, the repository
must have been created once at start (not by a backup), and it must verify.
Once on local storage and once on S3 (moto_server)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.services import (REDIS_URL, free_port, redis_available, require_service,
                                    wait_for_port)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VOLUMES = 30
TERMINAL = ("succeeded", "failed", "cancelled")


class Platform:
    """`scripts/run.sh` (what `make run` starts) as a subprocess, and an admin HTTP session."""

    def __init__(self, data_dir: Path, extra_environment: dict[str, str]):
        self.port = free_port()
        self.data_dir = data_dir
        environment = {key: value for key, value in os.environ.items()
                       if not key.endswith(("_TOKEN", "_TOKEN_FILE"))
                       and not key.startswith("S3_")
                       and key not in ("PORT", "DATABASE_URL", "REPOSITORY_KEY")}
        environment.update(DATA_DIR=str(data_dir), PORT=str(self.port),
                           CELERY_BROKER_URL=REDIS_URL, WEB_CONCURRENCY="2",
                           WORKER_CONCURRENCY="2",
                           VENV=str(Path(os.sys.executable).parent.parent),
                           **extra_environment)
        self.log_path = data_dir.parent / f"{data_dir.name}-run.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT,
                                            env=environment, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self) -> None:
        assert wait_for_port("127.0.0.1", self.port, timeout=90), self.log()[-3000:]
        deadline = time.monotonic() + 90
        while not self._ready():
            assert time.monotonic() < deadline, self.log()[-3000:]
            time.sleep(0.5)
        token = (self.data_dir / "tokens" / "admin").read_text().strip()
        self.session.headers["X-API-TOKEN"] = token

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.base}/ready", timeout=30).status_code == 200
        except requests.RequestException:
            return False  # workers still booting on a busy machine

    def call(self, method: str, path: str, **arguments) -> requests.Response:
        return self.session.request(method, f"{self.base}/api/v1{path}", timeout=60, **arguments)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)


def _first_fan_out(platform: Platform) -> list[dict]:
    for number in range(VOLUMES):
        created = platform.call("POST", "/volumes", json={"name": f"fresh-{number:02d}",
                                                          "size_gb": 1})
        assert created.status_code == 201, created.text
        volume_id = created.json()["id"]
        written = platform.call("PUT", f"/volumes/{volume_id}/files/data/file-{number}.txt",
                                data=f"volume {number}\n".encode() * 1000)
        assert written.status_code in (200, 201), written.text
    fan_out = platform.call("POST", "/backups", json={"all": True})
    assert fan_out.status_code == 202, fan_out.text
    started = fan_out.json()
    assert started["count"] == VOLUMES, started
    job_ids = [backup["job"] for backup in started["results"]]
    deadline = time.monotonic() + 240
    jobs = {}
    while time.monotonic() < deadline:
        for job_id in job_ids:
            if jobs.get(job_id, {}).get("status") not in TERMINAL:
                jobs[job_id] = platform.call("GET", f"/jobs/{job_id}").json()
        if all(job["status"] in TERMINAL for job in jobs.values()):
            return list(jobs.values())
        time.sleep(0.5)
    raise AssertionError(f"jobs still running: {[j for j in jobs.values() if j['status'] not in TERMINAL]}")


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_first_fan_out_on_a_fresh_deployment_backs_up_every_volume(storage, tmp_path, request):
    require_service("redis", redis_available(REDIS_URL), REDIS_URL)
    extra = {}
    if storage == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        extra = bucket.server.environment(bucket.name, prefix="fresh")
    platform = Platform(tmp_path / "data", extra)
    try:
        platform.wait_until_ready()
        jobs = _first_fan_out(platform)
        failed = [(job["id"], job["error"]) for job in jobs if job["status"] != "succeeded"]
        assert failed == [], failed
        backups = platform.call("GET", "/backups", params={"page_size": 100}).json()
        completed = [item for item in backups["results"] if item["status"] == "completed"]
        assert len(completed) == VOLUMES
        assert len({item["snapshot_id"] for item in completed}) == VOLUMES
        verify = platform.call("POST", "/verify", json={"read_data_percent": 100})
        assert verify.status_code == 202, verify.text
        verify_job = verify.json()
        verify_job = verify_job.get("job", verify_job)
        deadline = time.monotonic() + 120
        while (state := platform.call("GET", f"/jobs/{verify_job['id']}").json())["status"] \
                not in TERMINAL:
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
        assert state["status"] == "succeeded", state
    finally:
        status = platform.stop()
    output = platform.log()
    assert status == 0, output[-3000:]
    # Created once, at start, by `manage.py init_repository`; never by a worker's job.
    assert output.count("backup repository: initialised a new repository at") == 1, output[-3000:]
    assert "initialised a new backup repository" not in output
    assert "integrity_error" not in output
