"""Fixtures of the volumes tests: a private pool root per test, and a volume made through the API."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def volume_root(settings, tmp_path):
    """Each test gets its own pool root, so tests never see each other's folders."""
    settings.VOLUME_ROOT = tmp_path / "pool"
    return settings.VOLUME_ROOT


@pytest.fixture
def admin(api):
    return api("admin")


@pytest.fixture
def create_volume(admin):
    """Create a volume through the API and return its JSON."""

    def create(name: str = "data-1", size_gb: int = 1, **fields) -> dict:
        response = admin.post("/api/v1/volumes", {"name": name, "size_gb": size_gb, **fields}, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return create


def assert_error(response, status_code: int, code: str) -> dict:
    """The response is the platform's one error shape with this status and code."""
    assert response.status_code == status_code, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"code", "message", "detail"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body
