"""The OpenAPI document is the API: schemathesis fuzzes a live server from its own schema.

The API under real gunicorn (`gunicorn_server`: the repository's gunicorn.conf.py, two
worker processes) serves the test database, seeded with volumes holding files, a completed backup with a real snapshot, a
failed and a queued backup, a policy and throwaway tokens. `schemathesis run` (the CLI, in its
own process) reads `/api/schema/` from that server and sends generated requests, valid and
invalid, as three callers: the admin token, the read token and no token (there schemathesis
also makes tokens up: 401, then 429 past the failed-authentication limit). Every response
must be no server error, carry a documented status code and match the documented schema.

Ids of the seeded rows reach the fuzzer through schemathesis dictionaries, so part of the
requests get past the 404 of a random id. DELETE /tokens/{id} only ever names throwaway
tokens: the run must not revoke the token it is using. Messages of the jobs the run queues go
to the test broker (Redis) and are purged afterwards; no worker runs them.

Deterministic: `generation.deterministic` (the same inputs on every run, no example database)
and one schemathesis worker (see WORKERS).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fixtures_celery import DEFAULT_QUEUES, purge_queues
from tests.support.services import REDIS_URL

# About 90 CPU-seconds in all, shared by the server and the fuzzer (two processes); the
# timeout only guards against a hang on a machine busy with other work.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

MIN_REQUESTS = 1000
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
# (caller, max examples per operation, phases). The admin run reaches the most code, and its
# stateful phase chains calls (create, then read, change, delete). The read run reaches every
# read and the 403 of every write; the run without a token, the 401 of every operation.
RUNS = (("admin", 12, "fuzzing,stateful"), ("read", 10, "fuzzing"), (None, 8, "fuzzing"))
# Two: while one waits for the server, the other generates the next request.
# One schemathesis worker: with two, its threads parse lambdas (hypothesis describes its
# strategies with ast.parse) at the same time, and CPython 3.11.7 (this machine's) then failed
# once with "SystemError: AST constructor recursion depth mismatch": the AST validator's
# recursion counter is not thread-safe there. A fuzzer error, not the API's.
WORKERS = 1
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


# One access-log line per request (gunicorn.conf.py's format): "... "GET /api/v1/volumes/ HTTP/1.1" 200 ..."
API_REQUEST_LINE = re.compile(r'"(?:GET|POST|PUT|PATCH|DELETE) /api/v1/')


def api_requests(server) -> int:
    """The API requests the server has answered so far, from its own access log."""
    return len(API_REQUEST_LINE.findall(server.log()))


@pytest.fixture
def purge_broker(settings):
    """Afterwards, empty the queues the run published to on the test broker (no worker ran
    those jobs, and a later test's worker must not receive them)."""
    from backups.models import Job

    yield
    queues = set(DEFAULT_QUEUES) | set(Job.objects.values_list("queue", flat=True))
    for url in {REDIS_URL, settings.CELERY_BROKER_URL}:
        purge_queues(url, queues)


def seed(make_volume) -> dict[str, list]:
    """Rows for the fuzzer to find; returns the dictionaries of their ids."""
    from accounts.models import TokenSource
    from accounts.tokens import create_token
    from backups import runners, services
    from backups.models import Backup, BackupStatus, BackupTrigger, Job, Policy

    data = make_volume("fuzz-data", files={"a.txt": b"alpha", "dir/b.txt": b"beta", "dir/sub/c.bin": b"\x00\x01"})
    empty = make_volume("fuzz-empty")
    busy = make_volume("fuzz-busy", files={"x.txt": b"x"})
    completed = services.trigger_backup(data, trigger=BackupTrigger.API)
    assert runners.execute(completed.job_id) == "succeeded"
    queued = services.trigger_backup(busy, trigger=BackupTrigger.API)  # stays queued: no worker
    failed = Backup.objects.create(volume=empty, volume_name=empty.name, status=BackupStatus.FAILED,
                                   trigger=BackupTrigger.API, error="disk on fire")
    policy = Policy.objects.create(name="fuzz-policy", schedule="0 2 * * *")
    # The default policy comes from a data migration; an earlier transactional test of the
    # same run may have flushed it.
    default_policy = Policy.objects.filter(is_default=True).first() or \
        Policy.objects.create(name="default", is_default=True)
    throwaway = [create_token(f"fuzz-throwaway-{n}", "read", source=TokenSource.CLI)[0] for n in range(3)]
    return {
        "volumes": [str(data.id), data.name, str(empty.id), empty.name, str(busy.id), busy.name],
        "backups": [str(completed.id), str(queued.id), str(failed.id)],
        "jobs": [str(job.id) for job in Job.objects.all()],
        "policies": [policy.id, default_policy.id],
        "tokens": [token.id for token in throwaway],
        "volume_files": ["a.txt", "dir", "dir/b.txt", "dir/sub/c.bin", "x.txt"],
        "snapshot_paths": ["/", "/a.txt", "/dir", "/dir/b.txt", "dir/sub", "/dir/sub/c.bin"],
        "volume_names": ["fuzz-new", "fuzz-data", "fuzz-empty"],
    }


def toml_value(value) -> str:
    return json.dumps(value)  # JSON strings, numbers and arrays are valid TOML


def config_text(dictionaries: dict[str, list], report: Path) -> str:
    """A schemathesis.toml binding the seeded ids to the operations that take them."""
    lines = ["[generation]", "deterministic = true", "",
             "[reports.json]", "enabled = true", f"path = {toml_value(str(report))}", ""]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {toml_value(values)}", ""]
    bindings = [
        # (path regex, method regex or "", parameter, dictionary, probability)
        ("^/api/v1/(volumes/\\{id\\}|volumes/\\{id\\}/.*)$", "", "path.id", "volumes", 0.7),
        ("^/api/v1/backups/\\{id\\}", "", "path.id", "backups", 0.7),
        ("^/api/v1/jobs/\\{id\\}", "", "path.id", "jobs", 0.7),
        ("^/api/v1/policies/\\{id\\}", "", "path.id", "policies", 0.7),
        # Always a throwaway token: a run must never revoke the token it is using.
        ("^/api/v1/tokens/\\{id\\}", "^DELETE$", "path.id", "tokens", 1.0),
        ("^/api/v1/tokens/\\{id\\}", "^GET$", "path.id", "tokens", 0.5),
        ("^/api/v1/volumes/\\{id\\}/files/\\{file_path\\}$", "", "path.file_path", "volume_files", 0.6),
        ("^/api/v1/volumes/\\{id\\}/files/$", "", "query.path", "volume_files", 0.5),
        ("^/api/v1/backups/\\{id\\}/(files|download)/$", "", "query.path", "snapshot_paths", 0.7),
        ("^/api/v1/(backup|backups)/$", "", "body.volume", "volumes", 0.7),
        ("^/api/v1/backups/\\{id\\}/restore/$", "", "body.new_volume_name", "volume_names", 0.5),
    ]
    for path, method, parameter, dictionary, probability in bindings:
        lines += ["[[operations]]", f"include-path-regex = {toml_value(path)}"]
        if method:
            lines.append(f"include-method-regex = {toml_value(method)}")
        lines += [f'parameters = {{ "{parameter}" = {{ dictionary = "{dictionary}", probability = {probability} }} }}',
                  ""]
    return "\n".join(lines)


def run_schemathesis(url: str, token: str | None, max_examples: int, phases: str, workdir: Path,
                     dictionaries) -> dict:
    report = workdir / "report.json"
    config = workdir / "schemathesis.toml"
    config.write_text(config_text(dictionaries, report))
    command = [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{url}/api/schema/",
               "--checks", CHECKS, "--max-examples", str(max_examples), "--phases", phases, "--no-color",
               "--request-timeout", "30", "--workers", str(WORKERS)]
    if token:
        command += ["--header", f"X-API-TOKEN: {token}"]
    log = workdir / "schemathesis.log"
    with open(log, "w") as output:
        result = subprocess.run(command, cwd=workdir, stdout=output, stderr=subprocess.STDOUT, timeout=300)
    assert report.exists(), f"schemathesis wrote no report:\n{log.read_text()[-8000:]}"
    return {"report": json.loads(report.read_text()), "output": log.read_text(), "exit": result.returncode}


def test_every_response_matches_the_openapi_document(gunicorn_server, tokens, make_volume, own_repository,
                                                      purge_broker, tmp_path):
    from accounts.models import ApiToken

    dictionaries = seed(make_volume)
    server = gunicorn_server(workers=2)
    outcomes = {}
    for role, max_examples, phases in RUNS:
        workdir = tmp_path / f"fuzz-{role or 'anonymous'}"
        workdir.mkdir()
        before = api_requests(server)
        outcomes[role] = run_schemathesis(server.url, tokens[role] if role else None, max_examples, phases,
                                          workdir, dictionaries)
        outcomes[role]["requests"] = api_requests(server) - before

    for role, outcome in outcomes.items():
        report = outcome["report"]
        assert report["operations"]["tested"] == report["operations"]["selected"] > 30, role
        assert (report["failures"], report["errors"], outcome["exit"]) == ([], [], 0), (
            f"caller {role or 'without a token'}:\n{outcome['output'][-12000:]}")
    requests = {role: outcome["requests"] for role, outcome in outcomes.items()}
    assert sum(requests.values()) >= MIN_REQUESTS, requests
    assert "Traceback" not in server.log()
    # The run never revoked the tokens it used.
    assert set(ApiToken.objects.filter(name__in=["test-admin", "test-read"]).values_list("revoked_at", flat=True)) == {None}
