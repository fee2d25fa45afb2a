"""Many processes initialising one empty repository at once, as a fresh deployment's
workers do on their first jobs: each round must leave exactly one repository (one config,
one key object) whose every snapshot every process can read. Local disk and S3 (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backups.engine.backends import open_backend
from backups.engine.repository import Repository

PROCESSES = 5
ROUNDS = 2  # each round is a fresh race on a fresh repository
ROOT = Path(__file__).resolve().parents[3]


def _location(kind: str, tmp_path: Path, round_number: int, request) -> tuple[str, dict]:
    if kind == "local":
        return str(tmp_path / f"repo-{round_number}"), {}
    bucket = request.getfixturevalue("s3_bucket")
    server = bucket.server
    environment = {"S3_ENDPOINT_URL": server.endpoint_url, "S3_REGION": server.region,
                   "S3_ACCESS_KEY_ID": server.access_key_id,
                   "S3_SECRET_ACCESS_KEY": server.secret_access_key}
    return f"s3://{bucket.name}/round-{round_number}", environment


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_concurrent_initialisation_leaves_one_repository_every_process_can_read(
        kind, tmp_path, request):
    key_file = tmp_path / "key"
    key_file.write_text("a passphrase for the initialisation race\n")
    for round_number in range(ROUNDS):
        location, s3_environment = _location(kind, tmp_path, round_number, request)
        go_file = tmp_path / f"go-{round_number}"
        read_file = tmp_path / f"read-{round_number}"
        environment = {**os.environ, **s3_environment, "PYTHONPATH": str(ROOT)}
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "backups.engine.tests.init_race_process", location,
                 str(key_file), str(number), str(go_file), str(read_file)],
                cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for number in range(PROCESSES)]
        go_file.touch()
        backend = open_backend(location, **({} if kind == "local" else {
            "endpoint_url": s3_environment["S3_ENDPOINT_URL"],
            "region": s3_environment["S3_REGION"],
            "access_key_id": s3_environment["S3_ACCESS_KEY_ID"],
            "secret_access_key": s3_environment["S3_SECRET_ACCESS_KEY"]}))
        _wait_for_snapshots(backend, PROCESSES, processes)
        read_file.touch()
        outputs = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr.decode()[-2000:]
            outputs.append(json.loads(stdout.decode().strip().splitlines()[-1]))

        assert backend.exists("config")
        assert len(list(backend.list("keys/"))) == 1, "a losing process left its key object"
        expected = {f"process-{number}": f"process {number} of the initialisation race"
                    for number in range(PROCESSES)}
        for output in outputs:
            assert output["read"] == expected
        repository = Repository.open(backend, key_file.read_text().strip())
        assert repository.orphan_ciphers == {}
        assert sorted(info.id for info in repository.snapshots()) == \
            sorted(output["snapshot"] for output in outputs)
        report = repository.verify(read_data_percent=100)
        assert report.ok, report.errors
        assert list(backend.list("locks/")) == []


def _wait_for_snapshots(backend, count: int, processes, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list(backend.list("snapshots/"))) < count:
        failed = [process for process in processes if process.poll() not in (None, 0)]
        if failed:
            raise AssertionError(failed[0].communicate()[1].decode()[-2000:])
        assert time.monotonic() < deadline, "the processes did not all back up in time"
        time.sleep(0.05)
