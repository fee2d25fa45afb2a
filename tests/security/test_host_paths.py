"""Decision (docs/security.md, "Host paths"): every role, read included, sees a volume's
host path; a client without a valid token sees nothing about volumes."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ["read", "backup", "admin"])
def test_every_role_sees_the_volumes_host_path(api, make_volume, role):
    volume = make_volume("paths-1")
    detail = api(role).get(f"/api/v1/volumes/{volume.id}")
    listing = api(role).get("/api/v1/volumes")
    assert detail.status_code == 200 and detail.json()["path"] == volume.path
    assert [item["path"] for item in listing.json()["results"]] == [volume.path]


@pytest.mark.parametrize("role", [None, "bad"])
def test_a_client_without_a_valid_token_sees_no_path(api, make_volume, role):
    volume = make_volume("paths-2")
    response = api(role).get(f"/api/v1/volumes/{volume.id}")
    assert response.status_code == 401
    assert volume.path not in response.content.decode()
