"""lcm_upgrade.yml and lcm_health_check.yml against a real deployment on this machine.

The deployment is the virtualenv kind (docs/deployment.md, "Hosts without systemd"): a git
checkout of the previous commit (HEAD~1, or UPGRADE_TEST_FROM) with a virtualenv of its own,
gunicorn, a Celery worker and beat kept running by deploy/bin/platformctl, its own SQLite
database, repository and Redis server. platformctl and platform-db are installed outside the
checkout, as on a real host. The inventory has one host, reached with the local connection,
so every host step of the upgrade runs for real.

1. the upgrade from the previous commit to HEAD succeeds and the platform runs HEAD;
2. lcm_health_check passes against it (real heartbeats, beat ticks, metrics) three ways, and
   fails naming beat once beat is stopped;
3. an upgrade to a broken release (a commit on top of HEAD whose migration adds a table and
   whose API cannot start) fails, and is rolled back: HEAD runs again, the table and its
   migration are gone (database restored), maintenance mode is off, the play failed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.ops.collection import ANSIBLE_DIR, BIN_DIR, COLLECTIONS_PATH, REPOSITORY_ROOT
from tests.support.services import free_port, require_service, wait_for_port

pytestmark = pytest.mark.slow

HOST = "node-1"


def git(*arguments: str, cwd: Path = REPOSITORY_ROOT) -> str:
    completed = subprocess.run(["git", *arguments], cwd=str(cwd), capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def clean_environment(**extra: str) -> dict[str, str]:
    """Only what a shell on the host would have: the deployment's settings come from its
    environment file, never from this test process's (DATABASE_URL, DATA_DIR, broker...)."""
    environment = {name: os.environ[name] for name in ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER") if name in os.environ}
    environment["PATH"] = f"{BIN_DIR}:/usr/local/bin:/usr/bin:/bin"
    environment.update(extra)
    return environment


class Deployment:
    def __init__(self, root: Path):
        self.root = root
        self.install = root / "opt" / "storage-platform"
        self.data = root / "data"
        self.env_file = root / "env"
        self.bin = root / "usr-local-bin"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tokens = {role: "sbp_" + secrets.token_urlsafe(24) for role in ("admin", "backup", "read")}
        self.redis: subprocess.Popen | None = None

    # -- the host's tools --------------------------------------------------------------
    def platformctl(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
        completed = subprocess.run([str(self.bin / "platformctl"), "-e", str(self.env_file), *arguments],
                                   capture_output=True, text=True, timeout=180, env=clean_environment())
        if check:
            assert completed.returncode == 0, completed.stdout + completed.stderr + self.logs()
        return completed

    def manage(self, *arguments: str) -> str:
        completed = subprocess.run(
            [str(self.install / "deploy" / "bin" / "with-env"), str(self.env_file),
             str(self.install / ".venv" / "bin" / "python"), "manage.py", *arguments],
            cwd=str(self.install), capture_output=True, text=True, timeout=300, env=clean_environment())
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return completed.stdout

    def logs(self) -> str:
        return "".join(f"\n--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                       for path in sorted((self.data / "log").glob("*.log")))

    def api(self, method: str, path: str, role: str = "admin", **options):
        return requests.request(method, self.url + path, headers={"Authorization": f"Bearer {self.tokens[role]}"},
                                timeout=30, **options)

    def version(self) -> dict:
        return requests.get(self.url + "/version", timeout=30).json()

    def tables(self) -> set[str]:
        with sqlite3.connect(self.data / "db.sqlite3") as connection:
            return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def migrations(self, app: str) -> set[str]:
        with sqlite3.connect(self.data / "db.sqlite3") as connection:
            return {row[0] for row in connection.execute("SELECT name FROM django_migrations WHERE app = ?", (app,))}

    # -- ansible ------------------------------------------------------------------------
    def inventory(self) -> Path:
        path = self.root / "inventory.yml"
        platform_vars = {
            "platform_deploy_method": "venv",
            "platform_become": False,
            "platform_install_dir": str(self.install),
            "platform_repository_url": str(REPOSITORY_ROOT),
            "platform_system_user": os.environ.get("USER", "root"),
            "platform_env_file": str(self.env_file),
            "platform_data_dir": str(self.data),
            "platform_maintenance_file": str(self.data / "maintenance"),
            "platform_port": self.port,
            "platform_ctl": str(self.bin / "platformctl"),
            "platform_db_tool": str(self.bin / "platform-db"),
            "upgrade_dump_dir": str(self.root / "dumps"),
            "upgrade_drain_timeout": 60,
            "upgrade_health_timeout": 60,
            "upgrade_backup_timeout": 120,
        }
        host = {"ansible_connection": "local", "ansible_host": "127.0.0.1", "ansible_python_interpreter": sys.executable}
        path.write_text(yaml.safe_dump({"all": {
            "vars": platform_vars,
            "children": {group: {"hosts": {HOST: host}} for group in ("platform_api", "platform_worker", "platform_beat")},
        }}))
        return path

    def playbook(self, name: str, extra_vars: dict | None = None, *options: str) -> subprocess.CompletedProcess:
        variables = self.root / f"vars-{name}-{time.monotonic_ns()}.json"
        variables.write_text(json.dumps(extra_vars or {}))
        completed = subprocess.run(
            [str(BIN_DIR / "ansible-playbook"), "-i", str(self.inventory()), f"playbooks/{name}", "-e", f"@{variables}",
             *options],
            cwd=str(ANSIBLE_DIR), capture_output=True, text=True, timeout=900,
            env=clean_environment(
                ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH),
                ANSIBLE_NOCOWS="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCAL_TEMP=str(self.root / "ansible-tmp"),
                STORAGE_PLATFORM_URL=self.url, STORAGE_PLATFORM_ADMIN_TOKEN=self.tokens["admin"],
                STORAGE_PLATFORM_BACKUP_TOKEN=self.tokens["backup"], STORAGE_PLATFORM_READ_TOKEN=self.tokens["read"]))
        variables.with_suffix(".log").write_text(completed.stdout + completed.stderr)
        for token in self.tokens.values():
            assert token not in completed.stdout + completed.stderr
        return completed


def shared_site_packages() -> str:
    import django

    return str(Path(django.__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def releases():
    """(previous revision, current revision) of this repository."""
    previous_ref = os.environ.get("UPGRADE_TEST_FROM", "HEAD~1")
    completed = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{previous_ref}^{{commit}}"],
                               cwd=str(REPOSITORY_ROOT), capture_output=True, text=True)
    require_service(f"git history ({previous_ref})", completed.returncode == 0,
                    "a clone with at least two commits, or UPGRADE_TEST_FROM=<ref>")
    return completed.stdout.strip(), git("rev-parse", "HEAD")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, releases):
    """The previous release, installed and running, with one volume holding a file."""
    redis_server = shutil.which("redis-server")
    require_service("redis-server", redis_server is not None, "apt-get install redis-server")
    previous, _current = releases
    deployed = Deployment(tmp_path_factory.mktemp("deployment"))
    deployed.bin.mkdir()
    for tool in ("platformctl", "platform-db"):  # installed outside the checkout, like /usr/local/bin
        shutil.copy(REPOSITORY_ROOT / "deploy" / "bin" / tool, deployed.bin / tool)

    git("clone", "--quiet", "--shared", "--no-checkout", str(REPOSITORY_ROOT), str(deployed.install))
    git("checkout", "--quiet", "--detach", previous, cwd=deployed.install)
    # A virtualenv of the checkout's own that sees this test run's installed packages, so the
    # deployment installs nothing from the network; its gunicorn, celery and pip run them.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(deployed.install / ".venv")], check=True,
                   timeout=120)
    site_packages = next((deployed.install / ".venv" / "lib").glob("python3*/site-packages"))
    (site_packages / "test-run-packages.pth").write_text(shared_site_packages() + "\n")
    for command in ("gunicorn", "celery", "pip"):
        script = deployed.install / ".venv" / "bin" / command
        script.write_text(f'#!/bin/sh\nexec "$(dirname "$0")/python" -m {command} "$@"\n')
        script.chmod(0o755)

    redis_port = free_port()
    deployed.redis = subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for_port("127.0.0.1", redis_port, timeout=20)
    deployed.data.mkdir()
    settings = {
        "SP_HOME": deployed.install, "DATA_DIR": deployed.data, "MAINTENANCE_FILE": deployed.data / "maintenance",
        "DATABASE_URL": f"sqlite:///{deployed.data / 'db.sqlite3'}", "VOLUME_ROOT": deployed.data / "volumes",
        "REPOSITORY_DIR": deployed.data / "repository", "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "PORT": deployed.port, "BIND_ADDRESS": "127.0.0.1", "GUNICORN_WORKERS": 1, "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost", "NODE_NAME": "upgrade-test", "WORKER_CONCURRENCY": 1, "LOG_LEVEL": "INFO",
        "SECRET_KEY": secrets.token_urlsafe(32), "REPOSITORY_KEY": secrets.token_hex(32),
        "ADMIN_TOKEN": deployed.tokens["admin"], "BACKUP_TOKEN": deployed.tokens["backup"],
        "READ_TOKEN": deployed.tokens["read"], "JOB_HEARTBEAT_SECONDS": 1, "JOB_STALE_AFTER_SECONDS": 30,
        "SP_RESTART_SECONDS": 1, "SP_START_TIMEOUT": 45, "SP_STOP_TIMEOUT": 30,
    }
    deployed.env_file.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))

    deployed.manage("migrate", "--noinput")
    deployed.platformctl("start", "all")
    volume = deployed.api("POST", "/api/v1/volumes", json={"name": "canary", "size_gb": 1})
    assert volume.status_code == 201, volume.text
    upload = deployed.api("PUT", f"/api/v1/volumes/{volume.json()['id']}/files/hello.txt", data=b"hello")
    assert upload.status_code in (200, 201), upload.text
    yield deployed
    deployed.platformctl("stop", "all", check=False)
    deployed.redis.terminate()
    deployed.redis.wait(timeout=30)


def test_lcm_upgrade_moves_a_real_deployment_from_the_previous_commit_to_the_current_one(deployment, releases):
    previous, current = releases
    assert deployment.version()["git_revision"] == previous

    upgrade = deployment.playbook("lcm_upgrade.yml", {"platform_version": current})
    output = upgrade.stdout + upgrade.stderr
    assert upgrade.returncode == 0, output + deployment.logs()
    assert f"({previous}) to {current}" in output
    for step in ("Maintenance mode, systemd or venv host | on on node-1", "Process state, venv host (platformctl) | beat stopped",
                 "Database dump or restore, systemd or venv host | dump", "Check out the version", "Migrate the database once",
                 "Process state, venv host (platformctl) | worker restarted on node-1",
                 "Process state, venv host (platformctl) | api restarted on node-1",
                 "Maintenance mode, systemd or venv host | off on node-1"):
        assert f"TASK [{step}" in output, step  # the host steps ran, none was skipped for lack of hosts
    assert f"platform now runs" in output and current in output

    assert deployment.version()["git_revision"] == current
    assert deployment.version()["schema"]["pending"] == 0
    assert not (deployment.data / "maintenance").exists()
    assert deployment.platformctl("status").returncode == 0
    assert list((deployment.root / "dumps").glob("before-*.dump"))
    backups = deployment.api("GET", "/api/v1/backups", role="read").json()["results"]
    assert [backup["status"] for backup in backups] == ["completed"]  # the pre-upgrade backup

    # A second run with the version already running touches nothing.
    dumps = sorted((deployment.root / "dumps").iterdir())
    again = deployment.playbook("lcm_upgrade.yml", {"platform_version": current})
    output = again.stdout + again.stderr
    assert again.returncode == 0, output + deployment.logs()
    assert f"the platform already runs {current}" in output and "changed=0" in output, output
    assert "TASK [Maintenance mode, systemd or venv host" not in output
    assert sorted((deployment.root / "dumps").iterdir()) == dumps
    assert len(deployment.api("GET", "/api/v1/backups", role="read").json()["results"]) == 1

    # --check cannot preview an upgrade: the play refuses before touching anything.
    checked = deployment.playbook("lcm_upgrade.yml", {"platform_version": current}, "--check")
    output = checked.stdout + checked.stderr
    assert checked.returncode != 0 and "--check is not supported" in output, output
    assert "changed=0" in output
    assert deployment.version()["git_revision"] == current
    assert not (deployment.data / "maintenance").exists()


def test_lcm_health_check_passes_on_the_upgraded_platform_and_names_a_stopped_beat(deployment, releases):
    _previous, current = releases
    wanted = {"health_expected_version": current[:12]}
    for options in ((), (), ("--check",)):
        run = deployment.playbook("lcm_health_check.yml", wanted, *options)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output + deployment.logs()
        assert "changed=0" in output and "healthy: version" in output and "1 workers alive" in output

    deployment.platformctl("stop", "beat")
    try:
        failed = deployment.playbook("lcm_health_check.yml", wanted)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0
        assert "1 problems: beat: beat stopped at" in output, output
    finally:
        deployment.platformctl("start", "beat")


def broken_release(root: Path, base: str) -> tuple[Path, str]:
    """A repository whose newest commit, on top of `base`, adds a migration creating the table
    `upgrade_probe` and an API that refuses to start: migrate succeeds, the API restart fails."""
    source = root / "releases"
    git("clone", "--quiet", "--shared", str(REPOSITORY_ROOT), str(source))
    git("checkout", "--quiet", "-B", "broken", base, cwd=source)
    migrations = source / "monitoring" / "migrations"
    latest = sorted(path.stem for path in migrations.glob("0*.py"))[-1]
    (migrations / "0999_upgrade_probe.py").write_text(
        "from django.db import migrations\n\n\n"
        "class Migration(migrations.Migration):\n"
        f"    dependencies = [('monitoring', '{latest}')]\n"
        "    operations = [migrations.RunSQL('CREATE TABLE upgrade_probe (id integer)', 'DROP TABLE upgrade_probe')]\n")
    with open(source / "gunicorn.conf.py", "a") as config:
        config.write('\nraise SystemExit("this release cannot start its API")\n')
    git("add", "-A", cwd=source)
    git("-c", "user.name=release", "-c", "user.email=release@localhost", "commit", "--quiet", "-m", "broken release",
        cwd=source)
    return source, git("rev-parse", "HEAD", cwd=source)


def test_a_failed_upgrade_is_rolled_back_code_database_and_maintenance(deployment, releases, tmp_path):
    _previous, current = releases
    assert deployment.version()["git_revision"] == current
    source, broken = broken_release(tmp_path, current)

    upgrade = deployment.playbook("lcm_upgrade.yml", {"platform_version": broken, "platform_repository_url": str(source),
                                                      "upgrade_pre_backup": False})
    output = upgrade.stdout + upgrade.stderr
    assert upgrade.returncode != 0, output
    assert f"upgrade to {broken} failed at Process state, venv host (platformctl) | api restarted on node-1" in output
    assert "this release cannot start its API" in output  # the failed command's last words
    assert f"Rolled back to {current}, database restored from" in output, output + deployment.logs()
    assert "maintenance mode is off" in output and "is healthy" in output

    assert deployment.version()["git_revision"] == current
    assert "upgrade_probe" not in deployment.tables()
    assert "0999_upgrade_probe" not in deployment.migrations("monitoring")
    assert not (deployment.data / "maintenance").exists()
    assert deployment.platformctl("status").returncode == 0
    assert requests.get(deployment.url + "/ready", timeout=30).status_code == 200
    # Mutations are accepted again (maintenance off) and the catalog from before is intact.
    volumes = deployment.api("GET", "/api/v1/volumes", role="read").json()["results"]
    assert [volume["name"] for volume in volumes] == ["canary"]
