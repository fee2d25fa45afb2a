"""Two worker nodes on one shared S3 repository (moto) and one PostgreSQL, as docs/scaling.md
tells operators to scale out: each node has its own NODE_NAME and its own node-local volume
pool, and consumes its own `backup.<node>` queue. Everything runs as separate processes
(migrate + init_repository once, gunicorn, two Celery workers, the reconciler command), the
test only speaks HTTP to the API and reads the repository afterwards.

A fan-out over both nodes' volumes runs each backup on its own node; node B is killed with
SIGKILL half-way through one of its backups and started again; its jobs are recovered (or
fail with a reason), node A never runs a node-B job, and nothing is lost: every volume ends
with a completed backup whose snapshot restores byte for byte, and the repository verifies.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.faults.tcp_proxy import TcpProxy
from tests.support.services import (REDIS_URL, free_port, redis_available, require_service,
                                    wait_for_port)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
VOLUMES_PER_NODE = 4
VOLUME_MB = 8
TERMINAL = ("succeeded", "failed", "cancelled")
ADMIN_TOKEN = "sbp_multi-node-admin-token-0123456789"
REPOSITORY_KEY = "multi-node repository passphrase"
#: node B reaches S3 through a 4 MB/s link, so its backups last long enough to be killed.
SLOW_LINK_BYTES_PER_SECOND = 4 * 1024 * 1024


def _postgres_database():
    import psycopg

    name = f"sp_multinode_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True,
                                connect_timeout=5)
    except psycopg.OperationalError as error:
        require_service("PostgreSQL", False, f"127.0.0.1:5432 ({error})")
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop():
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"postgres://postgres@127.0.0.1:5432/{name}", drop


class Deployment:
    def __init__(self, tmp_path: Path, database_url: str, s3_environment: dict[str, str]):
        self.tmp_path = tmp_path
        self.pools = {"pool-a": tmp_path / "node-a-disk", "pool-b": tmp_path / "node-b-disk"}
        for root in self.pools.values():
            root.mkdir()
        inherited = {key: value for key, value in os.environ.items()
                     if not key.endswith(("_TOKEN", "_TOKEN_FILE")) and not key.startswith("S3_")
                     and key not in ("PORT", "DATABASE_URL", "REPOSITORY_KEY", "DATA_DIR")}
        self.common = {**inherited, **s3_environment, "DATABASE_URL": database_url,
                       "CELERY_BROKER_URL": REDIS_URL, "ADMIN_TOKEN": ADMIN_TOKEN,
                       "REPOSITORY_KEY": REPOSITORY_KEY, "SECRET_KEY": "multi-node-secret-" * 3,
                       "VOLUME_POOLS": ",".join(f"{name}={root}" for name, root in self.pools.items()),
                       "JOB_HEARTBEAT_SECONDS": "1", "JOB_STALE_AFTER_SECONDS": "5",
                       "JOB_RESEND_AFTER_SECONDS": "5"}
        self.processes: dict[str, subprocess.Popen] = {}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()
        self.session.headers["X-API-TOKEN"] = ADMIN_TOKEN

    def environment(self, node: str, **extra: str) -> dict[str, str]:
        data_dir = self.tmp_path / f"{node}-data"
        data_dir.mkdir(exist_ok=True)
        return {**self.common, "NODE_NAME": node, "DATA_DIR": str(data_dir), **extra}

    def run_command(self, *arguments: str) -> str:
        completed = subprocess.run([str(BIN / "python"), "manage.py", *arguments], cwd=ROOT,
                                   env=self.environment("node-a"), capture_output=True,
                                   text=True, timeout=180)
        assert completed.returncode == 0, completed.stderr[-3000:]
        return completed.stdout

    def start(self, name: str, command: list[str], environment: dict[str, str]) -> None:
        log = open(self.tmp_path / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def start_worker(self, node: str, s3_endpoint: str | None = None) -> None:
        extra = {"S3_ENDPOINT_URL": s3_endpoint} if s3_endpoint else {}
        self.start(f"worker-{node}",
                   [str(BIN / "celery"), "-A", "storage_platform", "worker", "-Q",
                    f"backup.{node},default", "-c", "2", "-O", "fair", "--without-gossip",
                    "--without-mingle", "-n", f"{node}@%h", "--loglevel", "INFO"],
                   self.environment(node, **extra))
        deadline = time.monotonic() + 90
        log_path = self.tmp_path / f"worker-{node}.log"
        while b" ready." not in log_path.read_bytes().split(b"worker-restart")[-1]:
            assert self.processes[f"worker-{node}"].poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        with open(self.tmp_path / f"{name}.log", "ab") as log:
            log.write(b"\n--- worker-restart ---\n")

    def pool_pids(self, name: str) -> set[int]:
        """The worker's main process and its pool children."""
        main = self.processes[name].pid
        pids = {main}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == main:
                        pids.add(int(entry.name))
                except (OSError, IndexError, ValueError):
                    continue
        return pids

    def call(self, method: str, path: str, **arguments) -> requests.Response:
        return self.session.request(method, f"{self.base}/api/v1{path}", timeout=60, **arguments)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(process.pid, signal.SIGKILL)


def _write_volume(path: Path, seed: int) -> dict[str, str]:
    digests = {}
    for index in range(VOLUME_MB // 4):
        data = os.urandom(4 * 1024 * 1024)
        name = f"data-{seed}-{index}.bin"
        (path / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def test_two_nodes_share_one_repository_and_survive_losing_one_mid_run(tmp_path, request):
    require_service("redis", redis_available(REDIS_URL), REDIS_URL)
    bucket = request.getfixturevalue("s3_bucket")
    s3_environment = bucket.server.environment(bucket.name, prefix="shared")
    database_url, drop_database = _postgres_database()
    proxy = TcpProxy(bucket.server.port, bytes_per_second=SLOW_LINK_BYTES_PER_SECOND).up()
    deployment = Deployment(tmp_path, database_url, s3_environment)
    try:
        deployment.run_command("migrate", "--noinput")
        assert "initialised a new" in deployment.run_command("init_repository")
        deployment.start("api", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind",
                                 f"127.0.0.1:{deployment.port}", "--workers", "2",
                                 "storage_platform.wsgi:application"],
                         deployment.environment("node-a"))
        assert wait_for_port("127.0.0.1", deployment.port, timeout=90)
        deployment.start_worker("node-a")
        deployment.start_worker("node-b", s3_endpoint=proxy.url)

        volumes = {}
        for node, pool in (("node-a", "pool-a"), ("node-b", "pool-b")):
            for number in range(VOLUMES_PER_NODE):
                created = deployment.call("POST", "/volumes", json={
                    "name": f"{node}-vol-{number}", "size_gb": 1, "pool": pool, "node": node})
                assert created.status_code == 201, created.text
                volume = created.json()
                assert Path(volume["path"]).is_relative_to(deployment.pools[pool])
                volumes[volume["id"]] = (node, _write_volume(Path(volume["path"]), number))

        fan_out = deployment.call("POST", "/backups", json={"all": True})
        assert fan_out.status_code == 202, fan_out.text
        job_of_volume = {item["volume"]: item["job"] for item in fan_out.json()["results"]}
        assert set(job_of_volume) == set(volumes)
        node_pids = {"node-a": deployment.pool_pids("worker-node-a"),
                     "node-b": deployment.pool_pids("worker-node-b")}

        # Node B dies half-way through one of its backups.
        node_b_jobs = [job_of_volume[v] for v, (node, _) in volumes.items() if node == "node-b"]
        deadline = time.monotonic() + 120
        while True:
            jobs = [deployment.call("GET", f"/jobs/{job_id}").json() for job_id in node_b_jobs]
            if any(job["status"] == "running" and 0 < job["progress"]["bytes_done"]
                   < (job["progress"]["bytes_total"] or 0) for job in jobs):
                break
            assert time.monotonic() < deadline, jobs
            time.sleep(0.2)
        deployment.kill("worker-node-b")
        deployment.start_worker("node-b", s3_endpoint=proxy.url)
        node_pids["node-b"] |= deployment.pool_pids("worker-node-b")

        deadline = time.monotonic() + 240
        while True:
            jobs = {job_id: deployment.call("GET", f"/jobs/{job_id}").json()
                    for job_id in job_of_volume.values()}
            if all(job["status"] in TERMINAL for job in jobs.values()):
                break
            assert time.monotonic() < deadline, [j for j in jobs.values() if j["status"] not in TERMINAL]
            deployment.run_command("reconcile_jobs")
            time.sleep(1)

        for volume_id, (node, _) in volumes.items():
            job = jobs[job_of_volume[volume_id]]
            assert job["queue"] == f"backup.{node}", job
            if job["status"] == "succeeded":
                worker_pid = int(job["worker"].rsplit(":", 2)[1])
                assert worker_pid in node_pids[node], (node, job["worker"], node_pids)
            else:
                assert job["status"] == "failed" and job["error"], job
        assert all(jobs[job_of_volume[v]]["status"] == "succeeded"
                   for v, (node, _) in volumes.items() if node == "node-a")

        # Nothing lost: a volume whose backup failed with the node is backed up again, and
        # every volume's newest backup restores byte for byte from the shared repository.
        for volume_id, (node, _) in volumes.items():
            if jobs[job_of_volume[volume_id]]["status"] != "succeeded":
                retry = deployment.call("POST", f"/volumes/{volume_id}/backups", json={})
                assert retry.status_code == 202, retry.text
                retry_job = retry.json()["job"]
                deadline = time.monotonic() + 120
                while deployment.call("GET", f"/jobs/{retry_job}").json()["status"] not in TERMINAL:
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
                assert deployment.call("GET", f"/jobs/{retry_job}").json()["status"] == "succeeded"
        _check_repository(bucket, volumes, tmp_path)
    finally:
        deployment.stop()
        proxy.down()
        drop_database()


def _check_repository(bucket, volumes, tmp_path) -> None:
    from backups.engine.backends.s3 import S3Backend
    from backups.engine.repository import Repository

    repository = Repository.open(S3Backend(bucket.name, "shared", client=bucket.server.client()),
                                 REPOSITORY_KEY)
    newest = {}
    for info in repository.snapshots():
        newest[info.source] = info
    for volume_id, (_, digests) in volumes.items():
        info = newest[f"volume:{volume_id}"]
        target = tmp_path / f"restored-{volume_id}"
        repository.restore(info.id, target)
        restored = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
                    for path in target.rglob("*") if path.is_file()}
        assert restored == digests, volume_id
    report = repository.verify(read_data_percent=100)
    assert report.ok, report.errors
