"""Shared pytest fixtures for API tests: tokens per role, API clients, volumes without the API.

    def test_read_cannot_delete(api, make_volume):
        volume = make_volume("db-1", files={"a.txt": b"hello"})
        response = api("read").delete(f"/api/v1/volumes/{volume.id}")
        assert response.status_code == 403

* `tokens`: role -> plaintext token (`read`, `backup`, `admin`) created in the test database.
* `api(role)`: a DRF `APIClient` sending that role's `X-API-TOKEN`; `api(None)` sends no
  token, `api("bad")` a well-formed token that does not exist. Use `api(role, bearer=True)`
  to send `Authorization: Bearer` instead.
* `scoped_api(role, name=..., volumes=..., label_selector=..., verbs=...)`: a client with
  a new token of that role and scope (`accounts.scopes`).
* autouse: each test counts failed authentications from zero (`accounts.throttle`).
* `make_volume(name, size_gb=1, files=None, **fields)`: a `Volume` row in status
  `available` in pool `default` with its directory `settings.VOLUME_ROOT/<volume id>` (the
  directory pool's layout) holding `files`
  (relative path -> bytes). It does not go through the volumes API or pool driver, so tests
  of backups/jobs do not depend on them.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

ROLES = ("read", "backup", "admin")
BOGUS_TOKEN = "sbp_this-token-does-not-exist-0000000000000000000"


@pytest.fixture(autouse=True)
def _own_failed_authentication_counter(monkeypatch):
    """Every test client request comes from 127.0.0.1: give each test its own counter of
    failed authentications (accounts.throttle), as a fresh database gives it its own rows."""
    from accounts import throttle

    monkeypatch.setattr(throttle, "KEY_PREFIX", f"auth-failures-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def tokens(db) -> dict[str, str]:
    from accounts.models import TokenSource
    from accounts.tokens import create_token

    return {role: create_token(f"test-{role}", role, source=TokenSource.CLI, created_by="tests")[1]
            for role in ROLES}


@pytest.fixture
def api(tokens):
    from rest_framework.test import APIClient

    def client_for(role: str | None, *, bearer: bool = False) -> APIClient:
        client = APIClient()
        if role is None:
            return client
        token = BOGUS_TOKEN if role == "bad" else tokens[role]
        if bearer:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        else:
            client.credentials(HTTP_X_API_TOKEN=token)
        return client

    return client_for


@pytest.fixture
def scoped_api(db):
    from rest_framework.test import APIClient

    from accounts.models import TokenSource
    from accounts.scopes import build_scope
    from accounts.tokens import create_token

    def client_for(role: str, *, name: str = "scoped", **scope) -> APIClient:
        _, plaintext = create_token(name, role, source=TokenSource.CLI, scope=build_scope(role, **scope))
        client = APIClient()
        client.credentials(HTTP_X_API_TOKEN=plaintext)
        return client

    return client_for


@pytest.fixture
def make_volume(db, settings):
    from volumes.models import Volume, VolumeStatus

    def create(name: str = "vol-1", size_gb: int = 1, files: dict[str, bytes] | None = None, **fields):
        volume_id = fields.pop("id", None) or uuid.uuid4()
        root = Path(settings.VOLUME_ROOT) / str(volume_id)
        root.mkdir(parents=True, exist_ok=True)
        used = 0
        for relative, content in (files or {}).items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            used += len(content)
        fields.setdefault("status", VolumeStatus.AVAILABLE)
        fields.setdefault("path", str(root))
        fields.setdefault("used_bytes", used)
        return Volume.objects.create(id=volume_id, name=name, size_gb=size_gb, **fields)

    return create
