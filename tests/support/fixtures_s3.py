"""Shared pytest fixtures for S3: a REAL `moto_server` process spoken to over HTTP.

* `s3_server` (session): one moto_server for the whole run. Its `endpoint_url`, `region`,
  `access_key_id` / `secret_access_key`, `client()` (a boto3 client with short timeouts) and
  `create_bucket()` (a fresh, uniquely named bucket) are what tests use.
* `s3_bucket` (function): a fresh bucket on the session server: `.name`, `.client`,
  `.endpoint_url`, `.server`.
* `s3_lock_bucket` (function): the same with S3 Object Lock enabled on the bucket.
* `private_s3_server` (function): a moto_server of the test's own, for fault injection:
  `pause()` / `resume()` (SIGSTOP / SIGCONT: connections hang, nothing is lost, like a stalled
  network or an overloaded server), `stop()` / `start()` (the port refuses connections; moto
  keeps its objects in memory, so a restart LOSES EVERY OBJECT AND BUCKET), and
  `environment()` (the S3_* variables that point the platform at it).

If moto_server cannot be started the test is skipped locally and FAILS in CI (`require_service`).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import free_port, require_service, wait_for_port

_MOTO_BINARY = Path(sys.executable).with_name("moto_server")
_bucket_numbers = itertools.count()


class MotoServer:
    """One moto_server process on 127.0.0.1:<port> (port kept across stop/start)."""

    region = "us-east-1"
    # moto accepts any credentials; these are obviously fake so nobody mistakes them.
    access_key_id = "testing-access-key"
    secret_access_key = "testing-secret-key"

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()
        self._shared_client = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> bool:
        """Start the process (no-op when running); True once the port answers."""
        if self.running:
            return True
        if not _MOTO_BINARY.exists():
            return False
        environment = dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key_id,
                           AWS_SECRET_ACCESS_KEY=self.secret_access_key,
                           AWS_DEFAULT_REGION=self.region)
        self.process = subprocess.Popen(
            [str(_MOTO_BINARY), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=environment,
            # its own process group: a Ctrl-C on pytest must not hit it before teardown
            start_new_session=True,
        )
        # The process must still be ours when the port answers: if another process took the
        # port first, moto exits ("address in use") and the port answering means nothing.
        if wait_for_port("127.0.0.1", self.port, timeout) and self.running:
            return True
        self.stop()
        return False

    def stop(self) -> None:
        """Terminate the process. Its in-memory objects and buckets are gone."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGCONT)  # a paused process cannot exit
            except ProcessLookupError:
                pass
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: requests hang until `resume()`; state is kept."""
        assert self.running, "moto_server is not running"
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None, "moto_server was never started"
        os.kill(self.process.pid, signal.SIGCONT)

    def client(self, *, connect_timeout: float = 2.0, read_timeout: float = 10.0):
        """A boto3 S3 client for this server (no botocore retries, short timeouts)."""
        from backups.engine.backends.s3 import make_client

        return make_client(endpoint_url=self.endpoint_url, region=self.region,
                           access_key_id=self.access_key_id,
                           secret_access_key=self.secret_access_key,
                           connect_timeout=connect_timeout, read_timeout=read_timeout)

    def shared_client(self):
        """One client with the default timeouts for every test of this server: building a boto3
        client costs a quarter of a CPU second, and hundreds of tests each want one. boto3
        clients are thread-safe; nobody closes this one but the server's end."""
        if self._shared_client is None:
            self._shared_client = self.client()
        return self._shared_client

    def create_bucket(self, name: str | None = None, client=None, *,
                      object_lock: bool = False) -> str:
        """A new bucket; `object_lock=True` creates it with Object Lock enabled (which also
        turns versioning on, as on AWS)."""
        name = name or f"test-{os.getpid()}-{next(_bucket_numbers)}-{uuid.uuid4().hex[:8]}"
        extra = {"ObjectLockEnabledForBucket": True} if object_lock else {}
        (client or self.client()).create_bucket(Bucket=name, **extra)
        return name

    def environment(self, bucket: str, prefix: str = "repository") -> dict[str, str]:
        """The platform's S3_* settings pointing at this server and bucket."""
        return {"S3_ENDPOINT_URL": self.endpoint_url, "S3_BUCKET": bucket,
                "S3_PREFIX": prefix, "S3_REGION": self.region,
                "S3_ACCESS_KEY_ID": self.access_key_id,
                "S3_SECRET_ACCESS_KEY": self.secret_access_key}

    def log_tail(self, size: int = 4000) -> str:
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - size))
        return self._log.read().decode(errors="replace")


@dataclass
class S3Bucket:
    name: str
    client: object
    server: MotoServer

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url


def _started_server() -> MotoServer:
    for _ in range(3):  # a free port can be taken by someone else before moto binds it
        server = MotoServer()
        started = server.start()
        if started:
            break
    require_service("moto_server", started,
                    f"could not start {_MOTO_BINARY} (pip install 'moto[server]')")
    return server


@pytest.fixture(scope="session")
def s3_server():
    server = _started_server()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    client = s3_server.shared_client()
    name = s3_server.create_bucket(client=client)
    yield S3Bucket(name=name, client=client, server=s3_server)


@pytest.fixture
def s3_lock_bucket(s3_server):
    """A fresh bucket with S3 Object Lock enabled (and so versioned)."""
    client = s3_server.shared_client()
    name = s3_server.create_bucket(client=client, object_lock=True)
    yield S3Bucket(name=name, client=client, server=s3_server)


@pytest.fixture
def private_s3_server():
    server = _started_server()
    yield server
    server.stop()
