"""The disaster-recovery CLI as a terminal user meets it: volume names in `snapshots`,
progress drawn only on a terminal, and a closed pipe (`--json | head`) ending quietly."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from backups.engine.tests.test_cli import ROOT, keyed_repo, run_cli  # noqa: F401 - keyed_repo is a fixture

pytestmark = pytest.mark.engine


def engine_command(*arguments) -> list[str]:
    return [sys.executable, "-m", "backups.engine", *map(str, arguments)]


def test_snapshots_name_the_volume_each_one_holds(tmp_path, keyed_repo):
    repo, key_file = keyed_repo
    source = tmp_path / "source"
    source.mkdir()
    (source / "a").write_text("a")
    run_cli("backup", "--repo", repo, "--key-file", key_file, "--source", "volume:0b9c", "--tag", "volume-name:ledger",
            "--tag", "job:1", source)
    run_cli("backup", "--repo", repo, "--key-file", key_file, source)  # not made by the platform: no name
    table = run_cli("snapshots", "--repo", repo, "--key-file", key_file).stdout.splitlines()
    assert table[0].split() == ["ID", "TIME", "(UTC)", "VOLUME", "SOURCE", "TAGS"]
    first, second = (line.split() for line in table[1:])
    assert first[3:] == ["ledger", "volume:0b9c", "job:1"]
    assert second[3:] == ["-", str(source)]
    listing = json.loads(run_cli("snapshots", "--repo", repo, "--key-file", key_file, "--json").stdout)
    assert [item["volume_name"] for item in listing] == ["ledger", None]


def test_progress_is_drawn_on_a_terminal_and_only_there(tmp_path, keyed_repo):
    repo, key_file = keyed_repo
    source = tmp_path / "source"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(engine_command("backup", "--repo", repo, "--key-file", key_file, source),
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=terminal)
        os.close(terminal)
        drawn = b""
        while True:
            try:
                block = os.read(controller, 4096)
            except OSError:  # the child closed the terminal (EIO on Linux)
                break
            if not block:
                break
            drawn += block
        assert process.wait(timeout=60) == 0
    finally:
        os.close(controller)
    assert b"backup: " in drawn and b" MB" in drawn and b"100.0%" in drawn
    target = tmp_path / "target"
    quiet = run_cli("restore", "--repo", repo, "--key-file", key_file, "latest", target)
    assert quiet.stderr == "" and "restored snapshot" in quiet.stdout  # not a terminal: no progress


def test_json_into_a_closed_pipe_ends_quietly(tmp_path, keyed_repo):
    repo, key_file = keyed_repo
    process = subprocess.Popen(engine_command("snapshots", "--json", "--repo", repo, "--key-file", key_file),
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first byte is written, as `| head` can be
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert stderr == b"", stderr.decode()
