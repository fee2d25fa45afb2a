"""Host deployment without containers: the systemd units, their environment file, the crontab,
and the scripts for virtualenv hosts (with-env, platformctl, platform-db)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from backups.scheduling import cron
from tests.ops.collection import REPOSITORY_ROOT
from tests.support.services import port_open, require_service

DEPLOY = REPOSITORY_ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
ENV_EXAMPLE = DEPLOY / "env.example"


def environment_file_variables(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def exec_start(unit: Path) -> str:
    text = unit.read_text().replace("\\\n", " ")
    return re.search(r"^ExecStart=(.*)$", text, re.MULTILINE).group(1)


def test_there_is_a_unit_for_each_process():
    assert [unit.name for unit in UNITS] == [f"storage-platform-{name}.service" for name in ("api", "beat", "worker")]


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_every_variable_a_unit_uses_is_defined_in_the_environment_example(unit):
    used = set(re.findall(r"\$\{(\w+)\}", exec_start(unit)))
    defined = environment_file_variables(ENV_EXAMPLE)
    assert used <= set(defined), f"{unit.name} uses {sorted(used - set(defined))}, which deploy/env.example lacks"
    assert all(defined[name] for name in used)
    assert "EnvironmentFile=/etc/storage-platform/env" in unit.read_text()


def test_the_worker_consumes_its_node_queue_and_beat_records_its_ticks():
    worker = exec_start(DEPLOY / "systemd" / "storage-platform-worker.service")
    assert "--queues backup,backup.${NODE_NAME},maintenance,default" in worker
    # The scheduler comes from the settings, so a unit installed once serves every release.
    from django.conf import settings

    beat = exec_start(DEPLOY / "systemd" / "storage-platform-beat.service")
    assert "--scheduler" not in beat
    assert settings.CELERY_BEAT_SCHEDULER == "monitoring.scheduler:DatabaseScheduler"
    assert "GUNICORN_WORKERS" in (REPOSITORY_ROOT / "docs" / "configuration.md").read_text()


def test_units_pass_systemd_analyze_verify(tmp_path):
    """`systemd-analyze verify` against a root holding the units, their executables and the
    environment file where the units expect them."""
    analyzer = shutil.which("systemd-analyze")
    require_service("systemd-analyze", analyzer is not None and Path("/lib/systemd/system").is_dir(),
                    "apt-get install systemd")
    root = tmp_path / "root"
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "usr" / "lib" / "systemd").mkdir(parents=True)
    (root / "usr" / "lib" / "systemd" / "system").symlink_to("/lib/systemd/system")
    (root / "etc" / "storage-platform").mkdir()
    shutil.copy(ENV_EXAMPLE, root / "etc" / "storage-platform" / "env")
    venv_bin = root / "opt" / "storage-platform" / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for executable in ("gunicorn", "celery", "python"):
        (venv_bin / executable).write_text("#!/bin/sh\n")
        (venv_bin / executable).chmod(0o755)
    for unit in UNITS:
        shutil.copy(unit, root / "etc" / "systemd" / "system" / unit.name)
    completed = subprocess.run([analyzer, "verify", f"--root={root}",
                                *[f"/etc/systemd/system/{unit.name}" for unit in UNITS]],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0 and not completed.stderr.strip(), completed.stdout + completed.stderr


def crontab_commands() -> list[tuple[str, str]]:
    entries = []
    for line in (DEPLOY / "crontab").read_text().splitlines():
        if not line.strip() or line.startswith("#") or re.match(r"^\w+=", line):
            continue
        fields = line.split(None, 5)
        entries.append((" ".join(fields[:5]), fields[5]))
    return entries


def test_every_crontab_line_is_a_valid_schedule_running_through_with_env():
    entries = crontab_commands()
    assert len(entries) == 2
    for schedule, command in entries:
        cron.parse(schedule)
        assert 'deploy/bin/with-env "$SP_ENV" .venv/bin/python manage.py' in command, command
        completed = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
        assert completed.returncode == 0, completed.stderr


def test_a_crontab_command_sees_the_environment_file(tmp_path):
    """The reconcile line, run as cron would (sh, SP_HOME and SP_ENV set), against a stand-in
    checkout whose python prints the variable it was given."""
    home = tmp_path / "home"
    (home / "deploy" / "bin").mkdir(parents=True)
    shutil.copy(DEPLOY / "bin" / "with-env", home / "deploy" / "bin" / "with-env")
    (home / ".venv" / "bin").mkdir(parents=True)
    python = home / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$CELERY_BROKER_URL $*" > {tmp_path}/seen\n')
    python.chmod(0o755)
    (tmp_path / "env").write_text("CELERY_BROKER_URL=redis://broker.example:6379/3\n")
    _, command = crontab_commands()[1]
    completed = subprocess.run(["sh", "-c", command], env={"PATH": os.environ["PATH"], "SP_HOME": str(home),
                                                           "SP_ENV": str(tmp_path / "env")},
                               capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "seen").read_text().strip() == "redis://broker.example:6379/3 manage.py reconcile_jobs"


# --- platformctl: processes of a virtualenv host ------------------------------------------------
def fake_checkout(tmp_path: Path, beat_script: str) -> tuple[Path, Path]:
    """A checkout whose `celery` runs `beat_script` (only `beat` is started in these tests)."""
    home = tmp_path / "home"
    (home / ".venv" / "bin").mkdir(parents=True)
    celery = home / ".venv" / "bin" / "celery"
    celery.write_text("#!/bin/sh\n" + beat_script)
    celery.chmod(0o755)
    env_file = tmp_path / "env"
    env_file.write_text(f"SP_HOME={home}\nDATA_DIR={tmp_path / 'data'}\nSP_RESTART_SECONDS=0.2\n"
                        "SP_STOP_TIMEOUT=10\n")
    return home, env_file


def platformctl(env_file: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(DEPLOY / "bin" / "platformctl"), "-e", str(env_file), *arguments],
                          capture_output=True, text=True, timeout=60)


def test_platformctl_starts_restarts_after_a_crash_and_stops_the_whole_session(tmp_path):
    runs = tmp_path / "runs"
    _, env_file = fake_checkout(tmp_path, f'echo run >> {runs}\necho "$$" > {tmp_path}/child.pid\nexec sleep 300\n')
    started = platformctl(env_file, "start", "beat")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "beat started" in started.stdout
    assert platformctl(env_file, "status", "beat").stdout.startswith("beat running")
    assert platformctl(env_file, "start", "beat").stdout.startswith("beat already running")

    first_child = int((tmp_path / "child.pid").read_text())
    os.kill(first_child, signal.SIGKILL)  # a crash: the keeper starts it again
    deadline = time.monotonic() + 20
    while runs.read_text().count("run") < 2 or int((tmp_path / "child.pid").read_text()) == first_child:
        assert time.monotonic() < deadline, (tmp_path / "data" / "log" / "beat.log").read_text()
        time.sleep(0.1)
    assert "restarting in 0.2 s" in (tmp_path / "data" / "log" / "beat.log").read_text()

    second_child = int((tmp_path / "child.pid").read_text())
    stopped = platformctl(env_file, "stop", "beat")
    assert stopped.returncode == 0 and "beat stopped" in stopped.stdout
    with pytest.raises(ProcessLookupError):
        os.kill(second_child, 0)
    status = platformctl(env_file, "status")
    assert status.returncode == 3 and "beat stopped" in status.stdout


def test_platformctl_fails_with_the_log_when_a_process_does_not_come_up(tmp_path):
    _, env_file = fake_checkout(tmp_path, "echo 'settings are broken' >&2\nexit 0\n")
    started = platformctl(env_file, "start", "beat")
    assert started.returncode == 1
    assert "beat did not become ready" in started.stderr and "settings are broken" in started.stderr
    assert platformctl(env_file, "status", "beat").returncode == 3


def test_platformctl_refuses_an_unknown_process(tmp_path):
    _, env_file = fake_checkout(tmp_path, "exit 0\n")
    completed = platformctl(env_file, "start", "scheduler")
    assert completed.returncode == 64 and "unknown process 'scheduler'" in completed.stderr


# --- platform-db: the database dump an upgrade rolls back to ---------------------------------------
def platform_db(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(DEPLOY / "bin" / "platform-db"), *arguments], capture_output=True, text=True,
                          timeout=120, env={"PATH": os.environ["PATH"], **environment})


def test_platform_db_dumps_and_restores_sqlite(tmp_path):
    database = tmp_path / "db.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE catalog (name TEXT)")
        connection.execute("INSERT INTO catalog VALUES ('before')")
    environment = {"DATA_DIR": str(tmp_path)}
    dumped = platform_db(environment, "dump", str(tmp_path / "dump.sqlite3"))
    assert dumped.returncode == 0, dumped.stderr
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO catalog VALUES ('after')")
        connection.execute("CREATE TABLE newer_release (id INTEGER)")
    restored = platform_db(environment, "restore", str(tmp_path / "dump.sqlite3"))
    assert restored.returncode == 0, restored.stderr
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT name FROM catalog").fetchall() == [("before",)]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "newer_release" not in tables


def test_platform_db_reads_an_environment_file_and_refuses_a_missing_dump(tmp_path):
    (tmp_path / "env").write_text(f"DATA_DIR={tmp_path}\n")
    completed = platform_db({}, "-e", str(tmp_path / "env"), "restore", str(tmp_path / "none"))
    assert completed.returncode == 1 and "no dump at" in completed.stderr


def test_platform_db_dumps_and_restores_postgresql(tmp_path):
    require_service("postgresql", port_open("127.0.0.1", 5432) and shutil.which("pg_dump") is not None,
                    "a PostgreSQL server on 127.0.0.1:5432 and its client tools")
    name = f"sp_ansible_db_{uuid.uuid4().hex[:8]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"

    def psql(database_url: str, sql: str) -> str:
        completed = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", "--dbname", database_url, "-c", sql],
                                   capture_output=True, text=True, timeout=60)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout.strip()

    psql(admin, f"CREATE DATABASE {name}")
    try:
        psql(url, "CREATE TABLE catalog (name text); INSERT INTO catalog VALUES ('before')")
        dumped = platform_db({"DATABASE_URL": url}, "dump", str(tmp_path / "dump.pg"))
        assert dumped.returncode == 0, dumped.stderr
        psql(url, "INSERT INTO catalog VALUES ('after'); CREATE TABLE newer_release (id int)")
        restored = platform_db({"DATABASE_URL": url}, "restore", str(tmp_path / "dump.pg"))
        assert restored.returncode == 0, restored.stderr
        assert psql(url, "SELECT string_agg(name, ',') FROM catalog") == "before"
        assert psql(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'newer_release'") == "0"
        assert "postgres@" not in dumped.stdout + dumped.stderr + restored.stdout + restored.stderr
    finally:
        psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
