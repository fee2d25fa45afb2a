"""A real Prometheus scrapes a running platform; every dashboard query and alert returns data.

Starts the API (`manage.py runserver`) on a free port against this test's database (rows
committed, so the server process sees them), and Debian's `/usr/bin/prometheus` scraping it
every second with the platform's alert rules loaded and a metrics bearer token. Then every
panel query of the Grafana dashboard (template variables substituted) and the selector of
every alert (the expression without its final comparison) is run through /api/v1/query and
must return at least one series: no dead panel, no misspelt metric or label.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.db import connection

from backups.models import BackupStatus, JobKind, JobStatus, Policy
from monitoring.heartbeat import beat
from monitoring.tests.factories import make_backup, make_job, make_volume
from tests.support.services import free_port, require_service, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "rules" / "platform.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "storage-platform.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TOKEN = "live-metrics-token-0123456789"
COMPARISON_AT_END = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*[-+0-9.eE]+\s*$")
TEMPLATE_VALUES = {"$__rate_interval": "10s", "$__interval": "2s", "$__range": "5m", "$job": "storage-platform",
                   "$volume": ".*"}


def _database_url() -> str:
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{database['NAME']}"
    credentials = database["USER"] + (f":{urllib.parse.quote(database['PASSWORD'])}" if database.get("PASSWORD") else "")
    return f"postgres://{credentials}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", (promql, body)
    return body["data"]["result"]


def _substitute(expr: str) -> str:
    for variable, value in sorted(TEMPLATE_VALUES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace("${" + variable[1:] + "}", value).replace(variable, value)
    assert "$" not in expr, expr
    return expr


def _catalog() -> None:
    """Volumes with completed and failed backups, jobs of every kind, a worker heartbeat."""
    # Their policy replicates to "offsite" (REPLICATION_TARGETS of the server below): nothing
    # is on it yet, so it lags by beta's 40 hours. The policy's RPO is the default one's.
    replicated = Policy.objects.create(name="replicated-live", replication_target="offsite")
    alpha = make_volume("alpha", used_bytes=1024**3, policy=replicated)
    beta = make_volume("beta", used_bytes=int(9.5 * 1024**3), policy=replicated)  # 95 % of 10 GiB
    make_volume("gamma", created_hours_ago=48)  # never backed up: RPO violated
    stats = {"bytes_read": 5_000_000, "bytes_new": 1_000_000, "bytes_stored": 400_000, "duration_seconds": 42.0}
    make_backup(alpha, finished_hours_ago=30, stats=stats)
    make_backup(alpha, finished_hours_ago=1, stats=stats)
    make_backup(beta, finished_hours_ago=40, stats=stats)
    make_backup(beta, BackupStatus.FAILED, finished_hours_ago=2)
    make_job(JobKind.BACKUP, JobStatus.QUEUED, created_hours_ago=1)
    make_job(JobKind.RESTORE, JobStatus.RUNNING)
    make_job(JobKind.VERIFY, JobStatus.SUCCEEDED, finished_hours_ago=5)
    make_job(JobKind.VERIFY, JobStatus.FAILED, finished_hours_ago=1)
    make_job(JobKind.PRUNE, JobStatus.SUCCEEDED, finished_hours_ago=3, result={"repository_size_bytes": 123_456_789})
    make_job(JobKind.RESTORE, JobStatus.FAILED, finished_hours_ago=3)
    make_job(JobKind.DRILL, JobStatus.SUCCEEDED, finished_hours_ago=30, volume=alpha)
    make_job(JobKind.DRILL, JobStatus.FAILED, finished_hours_ago=2, volume=beta)
    make_job(JobKind.REPLICATE, JobStatus.SUCCEEDED, finished_hours_ago=1)
    beat("celery@live-test", "backup,maintenance")


@pytest.fixture
def platform_server(tmp_path):
    port = free_port()
    env = dict(os.environ, DATABASE_URL=_database_url(), DATA_DIR=str(settings.DATA_DIR), METRICS_TOKEN=TOKEN,
               DEBUG="false", PYTHONUNBUFFERED="1",
               REPLICATION_TARGETS=json.dumps({"offsite": {"location": "s3://replica-bucket/platform"}}))
    log = (tmp_path / "api.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", "--nothreading", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        assert wait_for_port("127.0.0.1", port, timeout=60), (tmp_path / "api.log").read_text()[-3000:]
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)
        log.close()


@pytest.fixture
def prometheus(tmp_path, platform_server):
    require_service("prometheus", os.access(PROMETHEUS, os.X_OK), "apt-get install prometheus")
    port = free_port()
    token_file = tmp_path / "metrics_token"
    token_file.write_text(TOKEN)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{
            "job_name": "storage-platform",
            "metrics_path": "/metrics",
            "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
            "static_configs": [{"targets": [platform_server]}],
        }],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_port("127.0.0.1", port, timeout=30), (tmp_path / "prometheus.log").read_text()[-3000:]
        yield base
    finally:
        _stop(process)
        log.close()


def _wait_for_samples(base: str, tmp_path: Path) -> None:
    # At least 4 scrapes, so rate()/increase()/deriv() over the 10 s window have 2+ points.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            result = _query(base, 'count_over_time(up{job="storage-platform"}[1m])')
            healthy = _query(base, 'up{job="storage-platform"} == 1')
        except OSError:
            result, healthy = [], []
        if healthy and result and float(result[0]["value"][1]) >= 4:
            return
        time.sleep(0.5)
    api_log = (tmp_path / "api.log").read_text()[-3000:]
    pytest.fail(f"Prometheus did not get 4 successful scrapes of the platform in 60 s:\n{api_log}")


def test_every_panel_query_and_alert_expression_returns_data(prometheus, tmp_path):
    _catalog()
    _wait_for_samples(prometheus, tmp_path)

    dead = []
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [(f"panel {panel['title']!r}", target["expr"])
               for panel in dashboard["panels"] if panel["type"] != "row" for target in panel["targets"]]
    queries += [(f"variable {variable['name']}", variable["query"]["query"].replace("label_values(", "group by (volume) (")
                 .replace(", volume)", ")"))
                for variable in dashboard["templating"]["list"] if variable["name"] == "volume"]
    rules = yaml.safe_load(RULES.read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    queries += [(f"alert {rule['alert']}", COMPARISON_AT_END.sub("", rule["expr"])) for rule in alerts]
    for name, expr in queries:
        if not _query(prometheus, _substitute(expr)):
            dead.append(f"{name}: {expr}")
    assert not dead, "queries without data:\n" + "\n".join(dead)
    assert len(alerts) >= 10
    # One platform and one Prometheus serve both checks: starting them costs most of the time.
    _check_values_and_alert_states(prometheus)


def _check_values_and_alert_states(prometheus: str) -> None:
    def single(promql: str) -> dict[str, float]:
        return {row["metric"].get("volume", ""): float(row["value"][1]) for row in _query(prometheus, promql)}

    assert single("backup_rpo_violation") == {"alpha": 0, "beta": 1, "gamma": 1}
    assert single("backup_last_attempt_failed") == {"alpha": 0, "beta": 1, "gamma": 0}
    assert single('backup_operations_total{result="failure"}') == {"": 1}
    assert single("backup_repository_size_bytes") == {"": 123_456_789}
    assert single("backup_workers_alive") == {"": 1}
    lag = {row["metric"]["target"]: float(row["value"][1]) for row in _query(prometheus, "backup_replication_lag_seconds")}
    assert list(lag) == ["offsite"] and 40 * 3600 <= lag["offsite"] < 41 * 3600
    # Rules are evaluated every second: alerts without `for` fire, the others are pending.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        alerts = {(row["metric"]["alertname"], row["metric"].get("volume", ""), row["metric"]["alertstate"])
                  for row in _query(prometheus, "ALERTS")}
        if ("BackupVerifyFailed", "", "firing") in alerts and ("BackupRpoViolation", "gamma", "pending") in alerts:
            break
        time.sleep(0.5)
    assert ("BackupVerifyFailed", "", "firing") in alerts
    assert {("BackupRpoViolation", "beta", "pending"), ("BackupRpoViolation", "gamma", "pending")} <= alerts
    assert ("BackupFailed", "beta", "pending") in alerts
    assert ("BackupReplicationLagging", "", "pending") in alerts
    assert not any(volume == "alpha" for _, volume, _ in alerts)
    assert not any(name in ("StoragePlatformApiDown", "BackupWorkerHeartbeatMissing") for name, _, _ in alerts)
