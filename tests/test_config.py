"""A malformed setting stops every entry point with ONE line on stderr and exit status 2.

Real subprocesses: manage.py, the Celery worker and beat, and gunicorn.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TIMEOUT = 60
PLATFORM_VARIABLES = ("VOLUME_POOLS", "PORT", "DATABASE_URL", "ADMIN_TOKEN", "BACKUP_TOKEN", "READ_TOKEN", "LOG_LEVEL", "DEBUG",
                      "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")


def run(command: list[str], tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if key not in PLATFORM_VARIABLES and not key.endswith("_TOKEN_FILE")}
    environment.update(DATA_DIR=str(tmp_path), **variables)
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=TIMEOUT)


def assert_one_line_failure(result: subprocess.CompletedProcess, mentions: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("configuration error:") and mentions in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("variable, value", [
    ("PORT", "abc"),
    ("PORT", "70000"),
    ("DATABASE_URL", "mysql://x"),
    ("ADMIN_TOKEN", "short"),
    ("READ_TOKEN_FILE", "/nonexistent/read-token"),
    ("LOG_LEVEL", "chatty"),
    ("DEBUG", "maybe"),
    ("CELERY_BROKER_URL", "amqp://guest@localhost//"),
    ("VOLUME_POOLS", "fast"),
    ("VOLUME_POOLS", "fast=/a,fast=/b"),
    ("REPLICATION_TARGETS", '{"dr": {"location": "relative/path"}}'),
    ("REPLICATION_TARGETS", '{"dr": {"location": "/srv/replica", "lock_mode": "compliance", "lock_days": 30}}'),
    ("REPLICATION_TARGETS_FILE", "/nonexistent/targets.json"),
])
def test_manage_py_exits_with_one_line(tmp_path, variable, value):
    result = run([str(BIN / "python"), "manage.py", "check"], tmp_path, **{variable: value})
    assert_one_line_failure(result, variable.removesuffix("_FILE"))


def test_manage_py_check_passes_with_good_settings(tmp_path):
    result = run([str(BIN / "python"), "manage.py", "check"], tmp_path, PORT="8123",
                 ADMIN_TOKEN="a-long-enough-admin-token")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("program", ["worker", "beat"])
def test_celery_exits_with_one_line(tmp_path, program):
    result = run([str(BIN / "celery"), "-A", "storage_platform", program], tmp_path, DATABASE_URL="mysql://x")
    assert_one_line_failure(result, "DATABASE_URL")


def test_gunicorn_exits_with_one_line_instead_of_respawning_workers(tmp_path):
    result = run([str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{free_port()}", "storage_platform.wsgi:application"],
                 tmp_path, ADMIN_TOKEN="short")
    assert_one_line_failure(result, "ADMIN_TOKEN")


def test_volume_pools_come_from_the_environment():
    from storage_platform.config import env_mapping

    assert env_mapping("VOLUME_POOLS", environ={"VOLUME_POOLS": "fast=/mnt/a, bulk = /mnt/b"}) == {
        "fast": "/mnt/a", "bulk": "/mnt/b"}
    assert env_mapping("VOLUME_POOLS", environ={}) == {}
