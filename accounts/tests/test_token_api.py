"""Token API, manage.py create_token, and the Django admin for tokens."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from accounts.models import ApiToken, TokenSource
from accounts.tokens import find_token

pytestmark = pytest.mark.django_db


def test_created_token_is_shown_once_and_works(api):
    response = api("admin").post("/api/v1/tokens", {"name": "ci", "role": "backup", "expires_in_days": 30},
                                 format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("sbp_") and body["role"] == "backup" and body["state"] == "active"
    assert body["expires_at"] is not None and body["created_by"] == "test-admin"
    assert response["Cache-Control"] == "no-store"

    listed = api("admin").get("/api/v1/tokens").json()
    assert "ci" in [item["name"] for item in listed["results"]]
    assert body["token"] not in str(listed)
    retrieved = api("admin").get(f"/api/v1/tokens/{body['id']}").json()
    assert "token" not in retrieved and "secret_hash" not in retrieved

    from rest_framework.test import APIClient
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN=body["token"])
    assert client.get("/api/v1/tokens").status_code == 403  # backup < admin: authenticated, not allowed


def test_delete_revokes_and_is_idempotent(api, client):
    created = api("admin").post("/api/v1/tokens", {"name": "tmp", "role": "read"}, format="json").json()
    assert api("admin").delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    assert api("admin").delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    assert api("admin").get(f"/api/v1/tokens/{created['id']}").json()["state"] == "revoked"
    response = client.get("/api/v1/tokens", HTTP_X_API_TOKEN=created["token"])
    assert response.status_code == 401 and response.json()["code"] == "token_revoked"


@pytest.mark.parametrize("payload, field", [
    ({"role": "read"}, "name"),
    ({"name": "x", "role": "superuser"}, "role"),
    ({"name": "bad name!", "role": "read"}, "name"),
    ({"name": "env-admin", "role": "admin"}, "name"),
    ({"name": "x", "role": "read", "expires_in_days": 0}, "expires_in_days"),
    ({"name": "x", "role": "read", "expires_in_days": "soon"}, "expires_in_days"),
])
def test_bad_create_input_is_400_validation_error(api, payload, field):
    response = api("admin").post("/api/v1/tokens", payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["detail"]


def test_duplicate_name_is_409(api):
    assert api("admin").post("/api/v1/tokens", {"name": "dup", "role": "read"}, format="json").status_code == 201
    response = api("admin").post("/api/v1/tokens", {"name": "dup", "role": "read"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "token_name_taken"


def test_malformed_json_is_400(api):
    response = api("admin").post("/api/v1/tokens", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_unknown_token_id_is_404(api):
    assert api("admin").get("/api/v1/tokens/999999").status_code == 404


def test_create_token_command_prints_only_the_token():
    stdout = io.StringIO()
    call_command("create_token", "--name", "deploy", "--role", "admin", "--expires-in-days", "7", stdout=stdout)
    plaintext = stdout.getvalue().strip()
    token = find_token(plaintext)
    assert token is not None and token.name == "deploy" and token.source == TokenSource.CLI
    assert token.expires_at is not None
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_token", "--name", "deploy", "--role", "read", stdout=io.StringIO())


def test_admin_add_shows_secret_once_and_revoke_action(client):
    admin_user = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    response = client.post("/admin/accounts/apitoken/add/", {"name": "from-admin", "role": "read"}, follow=True)
    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    plaintext = next(word for text in shown for word in text.split() if word.startswith("sbp_"))
    token = find_token(plaintext)
    assert token.name == "from-admin" and token.source == TokenSource.ADMIN and token.created_by == "root"
    again = client.get("/admin/accounts/apitoken/")
    assert plaintext not in again.content.decode()

    client.post("/admin/accounts/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]})
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_browsable_api_works_for_admin_session(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.get("/api/v1/tokens", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"<html" in response.content


def test_nul_in_token_id_or_header_is_a_4xx(api, client):
    assert api("admin").get("/api/v1/tokens/1%00").status_code == 404
    response = client.get("/api/v1/tokens", HTTP_X_API_TOKEN="sbp_abc\x00def")
    assert response.status_code == 401


def test_openapi_schema_describes_both_token_headers(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiTokenHeader"]["name"] == "X-API-TOKEN"
    assert schemes["BearerToken"]["scheme"] == "bearer"
    create = schema["paths"]["/api/v1/tokens/"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApiTokenCreated")
    assert "token" in schema["components"]["schemas"]["ApiTokenCreated"]["properties"]
