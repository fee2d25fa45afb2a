"""An environment token revoked through the API stays revoked across a restart.

The API runs under real gunicorn with BACKUP_TOKEN set; after `DELETE /api/v1/tokens/{id}`
of `env-backup`, fresh processes (a restart: each runs the bootstrap sync again) and
`manage.py bootstrap_tokens` keep it revoked and say so in one line; a new value (and a
restart) brings the token back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from accounts.models import ApiToken
from tests.support.fixtures_celery import database_url_for_worker

ADMIN_VALUE = "operator-chosen-admin-token-for-revocation"
BACKUP_VALUE = "operator-chosen-backup-token-for-revocation"
NEW_BACKUP_VALUE = "operator-chosen-backup-token-after-rotation"
ROOT = Path(__file__).resolve().parents[2]


def bootstrap_command(backup_value: str) -> subprocess.CompletedProcess:
    from django.conf import settings

    environment = {key: value for key, value in os.environ.items() if not key.endswith(("_TOKEN", "_TOKEN_FILE"))}
    environment.update(DATABASE_URL=database_url_for_worker(), DATA_DIR=str(settings.DATA_DIR),
                       SECRET_KEY=settings.SECRET_KEY, REPOSITORY_KEY=settings.REPOSITORY_KEY,
                       ADMIN_TOKEN=ADMIN_VALUE, BACKUP_TOKEN=backup_value)
    return subprocess.run([sys.executable, "manage.py", "bootstrap_tokens"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_revoked_environment_token_stays_revoked_after_a_restart(gunicorn_server):
    server = gunicorn_server(workers=2, env={"ADMIN_TOKEN": ADMIN_VALUE, "BACKUP_TOKEN": BACKUP_VALUE})

    def status_with(token: str) -> tuple[int, str]:
        response = requests.get(f"{server.url}/api/v1/jobs", headers={"X-API-TOKEN": token}, timeout=10)
        return response.status_code, response.json().get("code", "")

    assert status_with(BACKUP_VALUE)[0] == 200  # synced by the worker's first authentication
    token_id = ApiToken.objects.get(name="env-backup").pk
    revoke = requests.delete(f"{server.url}/api/v1/tokens/{token_id}", headers={"X-API-TOKEN": ADMIN_VALUE},
                             timeout=10)
    assert revoke.status_code == 204
    assert status_with(BACKUP_VALUE) == (401, "token_revoked")

    server.restart()  # every worker process runs the bootstrap sync again
    assert [status_with(BACKUP_VALUE) for _ in range(4)] == [(401, "token_revoked")] * 4
    stays = [line for line in server.log().splitlines() if "env-backup stays revoked" in line]
    assert stays and "set a new value" in stays[0]
    assert "env-backup rotated" not in server.log() and BACKUP_VALUE not in server.log()

    same = bootstrap_command(BACKUP_VALUE)
    assert same.returncode == 0, same.stderr
    assert "env-backup: stays_revoked" in same.stdout
    assert ApiToken.objects.get(name="env-backup").revoked_at is not None

    # The operator's way back: a new secret in the environment, then a restart.
    server.env["BACKUP_TOKEN"] = NEW_BACKUP_VALUE
    server.restart()
    assert status_with(NEW_BACKUP_VALUE)[0] == 200
    assert ApiToken.objects.get(name="env-backup").revoked_at is None
    assert status_with(BACKUP_VALUE) == (401, "authentication_failed")
    assert "env-backup rotated" in server.log()
