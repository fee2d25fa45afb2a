"""One process of the concurrent-initialisation stress test (test_concurrent_init.py).

    python -m backups.engine.tests.init_race_process REPO KEYFILE NUMBER GO_FILE READ_FILE

Waits for GO_FILE (so every process starts together), opens the repository or creates it
exactly as the platform's workers do, backs up a small directory of its own, waits for
READ_FILE (every process has backed up), then reads every snapshot in the repository back
through the index. Prints one JSON line: its snapshot id and what it read.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from backups.engine.backends import open_backend
from backups.engine.errors import RepositoryExists, RepositoryNotFound
from backups.engine.repository import Repository


def _wait_for(path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.005)


def _open_or_init(location: str, key: bytes) -> Repository:
    backend = open_backend(location)
    try:
        return Repository.open(backend, key)
    except RepositoryNotFound:
        pass
    try:
        return Repository.init(backend, key)
    except RepositoryExists:
        return Repository.open(backend, key)


def main(location: str, key_file: str, number: str, go_file: str, read_file: str) -> None:
    with open(key_file, "rb") as handle:
        key = handle.read().strip()
    source = tempfile.mkdtemp(prefix=f"init-race-{number}-")
    with open(os.path.join(source, "data.txt"), "w") as handle:
        handle.write(f"process {number} of the initialisation race\n" * 100)
    _wait_for(go_file)
    repository = _open_or_init(location, key)
    snapshot_id = repository.backup(source, source=f"process-{number}").snapshot_id
    _wait_for(read_file)
    reader = _open_or_init(location, key)
    contents = {}
    for info in reader.snapshots():
        data = b"".join(reader.open_file(info.id, "/data.txt"))
        contents[info.source] = data.decode().splitlines()[0]
    print(json.dumps({"snapshot": snapshot_id, "read": contents}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
