"""Token authentication: headers, states, error codes, last-used bookkeeping."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from accounts.tokens import create_token, find_token, hash_token

pytestmark = pytest.mark.django_db

PROTECTED = "/api/v1/tokens"


def test_token_is_stored_only_as_its_hash(tokens):
    token = ApiToken.objects.get(name="test-admin")
    assert tokens["admin"].startswith("sbp_")
    assert token.secret_hash == hash_token(tokens["admin"])
    assert tokens["admin"] not in {token.secret_hash, token.prefix}
    assert tokens["admin"].startswith(token.prefix)
    assert find_token(tokens["admin"]) == token
    assert find_token(tokens["admin"] + "x") is None


def test_no_token_is_401_not_authenticated(api):
    response = api(None).get(PROTECTED)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_is_401_authentication_failed(api):
    response = api("bad").get(PROTECTED)
    assert response.status_code == 401
    assert set(response.json()) == {"code", "message", "detail"}
    assert response.json()["code"] == "authentication_failed"


def test_bearer_header_works(api):
    assert api("admin", bearer=True).get(PROTECTED).status_code == 200


def test_other_authorization_scheme_is_not_a_token(client, db):
    response = client.get(PROTECTED, HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_expired_token_is_401_token_expired(client, db):
    token, plaintext = create_token("old", "admin", expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(PROTECTED, HTTP_X_API_TOKEN=plaintext)
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


def test_revoked_token_is_401_token_revoked(client, db):
    token, plaintext = create_token("gone", "admin")
    token.revoke()
    response = client.get(PROTECTED, HTTP_X_API_TOKEN=plaintext)
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


def test_last_used_is_written_at_most_once_a_minute(client, db):
    token, plaintext = create_token("busy", "read")
    client.get("/api/v1/tokens", HTTP_X_API_TOKEN=plaintext)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    client.get("/api/v1/tokens", HTTP_X_API_TOKEN=plaintext)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/v1/tokens", HTTP_X_API_TOKEN=plaintext)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first - timedelta(minutes=2)


def test_read_token_below_admin_is_403(api):
    response = api("read").get(PROTECTED)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_make_volume_creates_row_and_files(make_volume, settings):
    volume = make_volume("data-1", files={"dir/a.txt": b"hello"})
    assert volume.status == "available"
    assert (settings.VOLUME_ROOT / str(volume.id) / "dir" / "a.txt").read_bytes() == b"hello"
    assert volume.used_bytes == 5
