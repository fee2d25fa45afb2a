"""storagectl as an operator runs it, talking HTTP to a real platform server (gunicorn over
the test database) with a real Celery worker running the jobs. Every verb, its JSON output,
and its error exits (one line on stderr, non-zero status). The verbs run through the CLI's
entry point in this process (`ctl`); the tests about the process itself (exit status of
`python -m storagectl`, a closed pipe) start it for real (`ctl_process`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.fixtures_celery import BASE_DIR

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = "90"


class Finished:
    """What a finished storagectl run left: exit status and the bytes of stdout and stderr."""

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli_environment(platform_server, tokens, role, env) -> dict:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STORAGE_PLATFORM_")}
    environment.update({"STORAGE_PLATFORM_URL": platform_server.url, "COLUMNS": "200", **(env or {})})
    if role is not None:
        environment["STORAGE_PLATFORM_TOKEN"] = tokens[role] if role in tokens else role
    return environment


@pytest.fixture
def ctl_process(platform_server, tokens):
    """`ctl_process(*args, role="admin", stdin=None)`: `python -m storagectl` in its own process."""

    def run(*args: str, role: str | None = "admin", stdin: bytes | None = None, env: dict | None = None):
        return subprocess.run([sys.executable, "-m", "storagectl", *args], cwd=BASE_DIR,
                              env=cli_environment(platform_server, tokens, role, env),
                              input=stdin, capture_output=True, timeout=180)

    return run


@pytest.fixture
def ctl(platform_server, tokens):
    """`ctl(*args, role="admin", stdin=None)`: storagectl's entry point (`storagectl.cli.run`,
    what `python -m storagectl` calls) in this process, with its own environment, stdin,
    stdout and stderr (click's isolation), talking HTTP to the real server. In-process
    because a Python start per verb was a third of this file's CPU time; `ctl_process`
    runs the real command for the tests that are about the process itself."""
    from click.testing import CliRunner

    from storagectl.cli import run as storagectl

    def run(*args: str, role: str | None = "admin", stdin: bytes | None = None, env: dict | None = None):
        wanted = cli_environment(platform_server, tokens, role, env)
        unset = {key: None for key in os.environ if key.startswith("STORAGE_PLATFORM_") and key not in wanted}
        with CliRunner().isolation(input=stdin, env={**wanted, **unset}) as (stdout, stderr, _):
            returncode = storagectl(list(args))
            sys.stdout.flush()
            sys.stderr.flush()
        return Finished(returncode, stdout.getvalue(), stderr.getvalue())

    return run


def ok(process) -> str:
    assert process.returncode == 0, (process.returncode, process.stdout, process.stderr)
    return process.stdout.decode()


def as_json(process):
    return json.loads(ok(process))


def one_error_line(process, status: int, *fragments: str) -> str:
    assert process.returncode == status, (process.returncode, process.stdout, process.stderr)
    lines = process.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("storagectl: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_volume_and_file_verbs(ctl, tmp_path):
    created = as_json(ctl("--json", "volumes", "create", "cli-data", "--size-gb", "1", "--label", "team=ops"))
    assert created["name"] == "cli-data" and created["labels"] == {"team": "ops"}
    listed = as_json(ctl("--json", "volumes", "list", "--label", "team=ops"))
    assert [(v["name"], v["rpo_status"]) for v in listed] == [("cli-data", "never")]
    table = ok(ctl("volumes", "list"))
    assert "cli-data" in table and "PROTECTION" in table and "never" in table
    assert as_json(ctl("--json", "volumes", "show", "cli-data"))["id"] == created["id"]

    local = tmp_path / "report.txt"
    local.write_bytes(b"quarterly numbers\n" * 1000)
    put = as_json(ctl("--json", "files", "put", "cli-data", str(local), "docs/report.txt"))
    assert put["size"] == local.stat().st_size
    assert as_json(ctl("--json", "files", "put", "cli-data", "-", "from-stdin.txt", stdin=b"piped"))["size"] == 5
    entries = as_json(ctl("--json", "files", "ls", "cli-data"))
    assert {(e["name"], e["type"]) for e in entries} == {("docs", "dir"), ("from-stdin.txt", "file")}
    assert "report.txt" in ok(ctl("files", "ls", "cli-data", "docs"))
    copy = tmp_path / "copy.txt"
    ok(ctl("files", "get", "cli-data", "docs/report.txt", str(copy)))
    assert copy.read_bytes() == local.read_bytes()
    assert ok(ctl("files", "get", "cli-data", "from-stdin.txt", "-")) == "piped"

    one_error_line(ctl("volumes", "show", "no-such-volume"), 4, "volume_not_found", "HTTP 404")
    one_error_line(ctl("files", "get", "cli-data", "missing.txt", str(tmp_path / "x")), 4)
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.part").exists()
    one_error_line(ctl("volumes", "create", "Bad_Name", "--size-gb", "1"), 1, "HTTP 400")
    one_error_line(ctl("volumes", "delete", "cli-data", "--yes", role="read"), 3, "HTTP 403")
    one_error_line(ctl("volumes", "list", role=None), 3, "HTTP 401")
    one_error_line(ctl("volumes", "list", role="sbp_not-a-real-token-000000000000"), 3, "HTTP 401")
    one_error_line(ctl("--url", "http://127.0.0.1:9", "volumes", "list"), 6, "cannot reach")

    assert as_json(ctl("--json", "volumes", "delete", "cli-data", "--yes"))["name"] == "cli-data"
    one_error_line(ctl("volumes", "show", "cli-data"), 4)


def test_backup_restore_verify_drill_and_job_verbs_with_a_real_worker(ctl, celery_worker, tmp_path):
    ok(ctl("volumes", "create", "cli-src", "--size-gb", "1"))
    for name, content in (("etc/app.conf", b"setting=1\n"), ("data/big.bin", os.urandom(2 * 1024 * 1024)),
                          ("data/small.txt", b"small")):
        ok(ctl("files", "put", "cli-src", "-", name, stdin=content))

    backup = as_json(ctl("--json", "backups", "create", "cli-src", "--wait", "--timeout", WAIT_SECONDS))
    assert backup["status"] == "completed" and backup["job_status"] == "succeeded"
    assert [b["id"] for b in as_json(ctl("--json", "backups", "list", "--volume", "cli-src"))] == [backup["id"]]
    assert as_json(ctl("--json", "backups", "show", backup["id"]))["snapshot_id"] == backup["snapshot_id"]
    # A volume name stands for its newest completed backup.
    assert as_json(ctl("--json", "backups", "show", "cli-src"))["id"] == backup["id"]
    listing = as_json(ctl("--json", "backups", "browse", backup["id"], "/data"))
    assert {e["name"] for e in listing["entries"]} == {"big.bin", "small.txt"}
    assert "app.conf" in ok(ctl("backups", "browse", "cli-src", "/etc"))
    ok(ctl("backups", "download", backup["id"], "/etc/app.conf", str(tmp_path / "app.conf")))
    assert (tmp_path / "app.conf").read_bytes() == b"setting=1\n"

    restored = as_json(ctl("--json", "restore", backup["id"], "--new-volume", "cli-partial", "--paths",
                           "/etc/app.conf,/data/small.txt", "--wait", "--timeout", WAIT_SECONDS))
    assert restored["status"] == "succeeded"
    names = {e["name"] for e in as_json(ctl("--json", "files", "ls", "cli-partial", "data"))}
    assert names == {"small.txt"}
    assert ok(ctl("files", "get", "cli-partial", "etc/app.conf", "-")) == "setting=1\n"

    verified = as_json(ctl("--json", "verify", "--read-data-percent", "100", "--wait", "--timeout", WAIT_SECONDS))
    assert verified["status"] == "succeeded" and verified["kind"] == "verify"
    assert as_json(ctl("--json", "verify", backup["id"], "--wait"))["params"]["backup"] == backup["id"]

    drill = as_json(ctl("--json", "drill", "cli-src", "--timeout", WAIT_SECONDS))
    assert drill["ok"] and drill["entries"] == 5 and drill["bytes_checked"] == 2 * 1024 * 1024 + 10 + 5
    assert as_json(ctl("--json", "jobs", "show", drill["drill_job"]))["kind"] == "drill"
    # The platform's drill restores into a scratch folder: no volume is created.
    assert not [v for v in as_json(ctl("--json", "volumes", "list")) if v["name"].startswith("drill-")]

    job_ids = {j["id"] for j in as_json(ctl("--json", "jobs", "list", "--volume", "cli-src"))}
    assert backup["job"] in job_ids
    assert as_json(ctl("--json", "jobs", "show", backup["job"]))["status"] == "succeeded"
    assert as_json(ctl("--json", "jobs", "watch", backup["job"]))["status"] == "succeeded"
    one_error_line(ctl("jobs", "cancel", backup["job"]), 1, "HTTP 409")

    # A job that fails: a restore of a path the snapshot does not hold.
    failed = ctl("restore", backup["id"], "--new-volume", "cli-broken", "--paths", "/nowhere", "--wait",
                 "--timeout", WAIT_SECONDS)
    one_error_line(failed, 5, "failed", "no such path")
    one_error_line(ctl("restore", str(uuid.uuid4()), "--new-volume", "x-copy"), 4)
    one_error_line(ctl("restore", backup["id"], "--new-volume", "cli-partial"), 1, "HTTP 409")  # name taken


def test_replicate_names_the_policy_and_says_why_it_is_refused(ctl):
    """The session's server has no replication target: a policy names none (409), an unknown
    policy is a 404 (exit 4). The copy itself: backups/tests/test_replication*.py."""
    from backups.models import Policy

    # Its own policy: an earlier transactional test of the lane may have removed the default one.
    Policy.objects.create(name="cli-no-target")
    one_error_line(ctl("replicate", "cli-no-target"), 1, "HTTP 409", "names no replication target")
    one_error_line(ctl("replicate", "no-such-policy"), 4, "no policy named no-such-policy")


def test_a_queued_job_is_cancelled_and_watching_it_exits_non_zero(ctl, make_volume):
    make_volume("cli-idle", files={"a": b"a"})  # no worker runs in this test: the job stays queued
    backup = as_json(ctl("--json", "backups", "create", "cli-idle"))
    assert backup["status"] == "queued"
    assert as_json(ctl("--json", "jobs", "cancel", backup["job"]))["status"] == "cancelled"
    one_error_line(ctl("jobs", "watch", backup["job"]), 5, "cancelled")
    one_error_line(ctl("jobs", "show", str(uuid.uuid4())), 4, "job_not_found")
    one_error_line(ctl("backups", "create", "cli-idle", role="read"), 3, "HTTP 403")


def test_token_verbs(ctl, ctl_process):
    secret = ok(ctl("tokens", "create", "ci-reader", "--role", "read")).strip()
    assert secret and "ci-reader" not in secret
    # the real process: its output and exit statuses are what scripts see
    listed = as_json(ctl_process("--json", "tokens", "list"))
    assert any(t["name"] == "ci-reader" and t["state"] == "active" for t in listed)
    assert ok(ctl("--json", "volumes", "list", role=secret)) .strip() == "[]"
    ok(ctl("tokens", "revoke", "ci-reader"))
    one_error_line(ctl_process("volumes", "list", role=secret), 3, "HTTP 401")
    one_error_line(ctl("tokens", "revoke", "no-such-token"), 4)
    one_error_line(ctl("tokens", "list", role="backup"), 3, "HTTP 403")


def test_json_piped_into_head_ends_quietly(ctl, make_volume, platform_server, tokens):
    for number in range(250):  # ~150 KB of JSON: more than a pipe holds
        make_volume(f"many-{number:03d}")
    pipeline = subprocess.run(
        f"{sys.executable} -m storagectl --json volumes list | head -c 100 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        shell=True, executable="/bin/bash", cwd=BASE_DIR, capture_output=True, timeout=120,
        env={**os.environ, "STORAGE_PLATFORM_URL": platform_server.url, "STORAGE_PLATFORM_TOKEN": tokens["read"]})
    assert pipeline.stderr == b"", pipeline.stderr.decode()
    assert int(pipeline.stdout.decode().strip()) in (0, 1, 141)  # ended by the closed pipe, no traceback
    assert Path(BASE_DIR, "storagectl").is_dir()
