"""Fixtures of the fault-injection tests: fast heartbeats, a private redis-server, a volume
of random data big enough to be interrupted, and a loop that plays the reconciler.

Every test here is `slow`, uses real worker processes (tests/support/fixtures_celery.py) and
real services; a missing service skips locally and fails in CI (`require_service`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.tcp_proxy import TcpProxy
from tests.support.services import free_port, require_service, wait_for_port

HEARTBEAT_SECONDS = 1
STALE_AFTER_SECONDS = 5  # the settings' minimum
RESEND_AFTER_SECONDS = 5
# What every worker of these tests runs with, so a dead worker is noticed in seconds.
FAST_WORKER_ENV = {
    "JOB_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
    "JOB_STALE_AFTER_SECONDS": str(STALE_AFTER_SECONDS),
    "JOB_RESEND_AFTER_SECONDS": str(RESEND_AFTER_SECONDS),
}


# The repository lives in a real S3 server (moto) reached through a 4 MB/s link, so a backup of
# a few tens of MB lasts seconds however fast the engine is: long enough to kill, cut or stop
# something half-way, with small test data.
SLOW_LINK_BYTES_PER_SECOND = 4 * 1024 * 1024


@dataclass
class SlowS3:
    server: object
    bucket: str
    proxy: TcpProxy

    def worker_environment(self) -> dict[str, str]:
        """S3_* settings for a worker: the repository through the slow (cuttable) link."""
        return dict(self.server.environment(self.bucket), S3_ENDPOINT_URL=self.proxy.url)

    def open_repository(self):
        """The repository opened directly (not through the link), for checks after the fact."""
        from django.conf import settings

        from backups.engine.backends.s3 import S3Backend
        from backups.engine.repository import Repository

        return Repository.open(S3Backend(self.bucket, "repository", client=self.server.client()),
                               settings.REPOSITORY_KEY)


@pytest.fixture
def slow_s3(private_s3_server):
    bucket = private_s3_server.create_bucket()
    proxy = TcpProxy(private_s3_server.port, bytes_per_second=SLOW_LINK_BYTES_PER_SECOND).up()
    yield SlowS3(server=private_s3_server, bucket=bucket, proxy=proxy)
    proxy.down()


@pytest.fixture
def fast_jobs(settings):
    """The same short timings in the test process, where the reconciler runs."""
    settings.JOB_HEARTBEAT_SECONDS = HEARTBEAT_SECONDS
    settings.JOB_STALE_AFTER_SECONDS = STALE_AFTER_SECONDS
    settings.JOB_RESEND_AFTER_SECONDS = RESEND_AFTER_SECONDS
    return settings


def write_random_files(root: Path, total_mb: int, file_mb: int = 25) -> dict[str, str]:
    """Fill `root` with incompressible files; returns relative path -> sha256."""
    digests = {}
    remaining = total_mb
    index = 0
    while remaining > 0:
        size = min(file_mb, remaining)
        name = f"data-{index:03d}.bin"
        digest = hashlib.sha256()
        with open(root / name, "wb") as handle:
            for _ in range(size):
                block = os.urandom(1024 * 1024)
                digest.update(block)
                handle.write(block)
        digests[name] = digest.hexdigest()
        remaining -= size
        index += 1
    return digests


@pytest.fixture
def random_volume(make_volume):
    """`random_volume(name, total_mb)` -> (Volume, {file: sha256})."""

    def create(name: str, total_mb: int):
        volume = make_volume(name)
        digests = write_random_files(Path(volume.path), total_mb)
        return volume, digests

    return create


def wait_for(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")


def run_reconciler_until_finished(job_ids, timeout: float, interval: float = 1.0) -> dict:
    """Play beat: run the reconciler every `interval` until every job has finished.
    Returns {job id: Job}. Fails the test when a job is still active at the timeout (stuck)."""
    from backups.models import FINISHED_JOB_STATUSES, Job
    from backups.scheduling.reconciler import reconcile

    deadline = time.monotonic() + timeout
    while True:
        jobs = {str(job.pk): job for job in Job.objects.filter(pk__in=list(job_ids))}
        if all(job.status in FINISHED_JOB_STATUSES for job in jobs.values()):
            return jobs
        if time.monotonic() >= deadline:
            raise AssertionError("jobs still active (stuck): " + ", ".join(
                f"{job.pk} {job.status} attempts={job.attempts} worker={job.worker} error={job.error!r}"
                for job in jobs.values()))
        reconcile()
        time.sleep(interval)


def restore_and_compare(repository, snapshot_id: str, digests: dict[str, str]) -> None:
    """Restore the snapshot (which authenticates every blob) and compare every file's sha256."""
    with tempfile.TemporaryDirectory() as target:
        repository.restore(snapshot_id, target)
        restored = {}
        for path in Path(target).rglob("*"):
            if path.is_file():
                restored[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        assert restored == digests


class PrivateRedis:
    """A redis-server of the test's own on a spare port, that the test may stop and start."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        # No persistence on purpose: a restart loses every message, the worst case the
        # reconciler must repair.
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for_port("127.0.0.1", self.port, 10):
            raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path):
    require_service("redis-server", shutil.which("redis-server") is not None, "install redis-server")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
