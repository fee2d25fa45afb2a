"""Token scopes: creation and validation through the API and the admin, listing, audit, and
what a scoped token sees. The walk over every route is tests/test_scope_matrix.py."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken, AuditEvent
from accounts.tokens import find_token

pytestmark = pytest.mark.django_db


def create(api, **fields):
    return api("admin").post("/api/v1/tokens", {"name": "scoped", "role": "backup", **fields}, format="json")


def client_with(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN=plaintext)
    return client


def test_a_scope_is_stored_normalised_and_shown_in_the_list(api):
    response = create(api, scope={"volumes": ["db-*", "web-1", "db-*"], "label_selector": " env=prod , tier=db",
                                  "verbs": ["read", "backup"]})
    assert response.status_code == 201, response.content
    expected = {"volumes": ["db-*", "web-1"], "label_selector": "env=prod,tier=db", "verbs": ["read", "backup"]}
    assert response.json()["scope"] == expected
    listed = {item["name"]: item for item in api("admin").get("/api/v1/tokens").json()["results"]}
    assert listed["scoped"]["scope"] == expected
    assert listed["test-admin"]["scope"] == {"volumes": [], "label_selector": "", "verbs": []}


@pytest.mark.parametrize("scope, field", [
    ({"label_selector": "env"}, "label_selector"),
    ({"label_selector": "Bad Key=x"}, "label_selector"),
    ({"label_selector": ",".join(f"k{n}=v" for n in range(17))}, "label_selector"),
    ({"volumes": ["*"]}, "volumes"),
    ({"volumes": ["db*x"]}, "volumes"),
    ({"volumes": ["DB-1"]}, "volumes"),
    ({"volumes": ["db-?"]}, "volumes"),
    ({"verbs": ["delete"]}, "verbs"),
    ({"verbs": ["restore"]}, "verbs"),  # restore needs the admin role; this token is backup
])
def test_a_bad_scope_is_400_invalid_scope_and_creates_nothing(api, scope, field):
    response = create(api, scope=scope)
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"} and body["code"] == "invalid_scope"
    assert field in body["detail"]["scope"]
    assert not ApiToken.objects.filter(name="scoped").exists()


def test_a_scope_of_the_wrong_shape_is_400_validation_error(api):
    response = create(api, scope={"volumes": "db-1"})
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert not ApiToken.objects.filter(name="scoped").exists()


def test_a_volume_scoped_token_sees_its_volumes_only(api, make_volume):
    make_volume("db-1", labels={"env": "prod"})
    make_volume("db-2", labels={"env": "test"})
    make_volume("web-1", labels={"env": "prod"})
    by_prefix = create(api, scope={"volumes": ["db-*"]}).json()["token"]
    assert [v["name"] for v in client_with(by_prefix).get("/api/v1/volumes").json()["results"]] == ["db-1", "db-2"]
    both = api("admin").post("/api/v1/tokens", {"name": "both", "role": "read",
                                                "scope": {"volumes": ["db-*"], "label_selector": "env=prod"}},
                             format="json").json()["token"]
    # Both conditions narrow: a db-* volume labelled env=prod.
    client = client_with(both)
    assert [v["name"] for v in client.get("/api/v1/volumes").json()["results"]] == ["db-1"]
    # The list's own label filter combines with the scope's.
    assert client.get("/api/v1/volumes?label_selector=env=test").json()["count"] == 0
    hidden = client.get("/api/v1/volumes/web-1")
    missing = client.get("/api/v1/volumes/no-such-volume")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["code"] == missing.json()["code"] == "volume_not_found"


def test_requests_of_a_scoped_token_are_audited_with_its_scope(api, make_volume):
    make_volume("db-1")
    plaintext = create(api, scope={"volumes": ["db-1"], "verbs": ["read"]}).json()["token"]
    assert client_with(plaintext).post("/api/v1/volumes/db-1/backups").status_code == 403
    event = AuditEvent.objects.get(actor="scoped")
    assert event.token_scope == "volumes=db-1;verbs=read" and event.status_code == 403
    listed = api("admin").get("/api/v1/audit", {"actor": "scoped"}).json()["results"]
    assert listed[0]["token_scope"] == "volumes=db-1;verbs=read"
    creation = AuditEvent.objects.get(actor="test-admin", action__startswith="token")
    assert creation.token_scope == ""  # the creating token is unscoped


def test_a_volume_scoped_admin_token_cannot_mint_an_unscoped_one(api):
    plaintext = api("admin").post("/api/v1/tokens", {"name": "narrow-admin", "role": "admin",
                                                     "scope": {"volumes": ["db-1"]}}, format="json").json()["token"]
    response = client_with(plaintext).post("/api/v1/tokens", {"name": "wide", "role": "admin"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "outside_token_scope"
    assert not ApiToken.objects.filter(name="wide").exists()


def test_the_admin_creates_a_scoped_token_and_refuses_a_bad_scope(admin_client):
    refused = admin_client.post("/admin/accounts/apitoken/add/", {
        "name": "bad", "role": "backup", "scope_label_selector": "env", "expires_at_0": "", "expires_at_1": ""})
    assert refused.status_code == 200 and not ApiToken.objects.filter(name="bad").exists()
    assert "must look like key=value" in refused.content.decode()
    created = admin_client.post("/admin/accounts/apitoken/add/", {
        "name": "ci", "role": "backup", "scope_volumes_text": "db-*, web-1", "scope_label_selector": "env=prod",
        "scope_verbs": ["read", "backup"], "expires_at_0": "", "expires_at_1": ""}, follow=True)
    assert created.status_code == 200
    token = ApiToken.objects.get(name="ci")
    assert (token.scope_volumes, token.scope_label_selector, token.scope_verbs) == (
        ["db-*", "web-1"], "env=prod", ["read", "backup"])
    listing = admin_client.get("/admin/accounts/apitoken/").content.decode()
    assert "volumes=db-*,web-1;labels=env=prod;verbs=read,backup" in listing


def test_environment_and_cli_tokens_stay_unscoped(api, make_volume, tokens):
    make_volume("db-1")
    for role, plaintext in tokens.items():
        token = find_token(plaintext)
        assert (token.scope_volumes, token.scope_label_selector, token.scope_verbs) == ([], "", [])
        assert client_with(plaintext).get("/api/v1/volumes").json()["count"] == 1
