"""Environment bootstrap tokens: create, keep, rotate, revoke."""

import pytest

from accounts.bootstrap import sync_bootstrap_tokens
from accounts.models import ApiToken, TokenSource
from accounts.tokens import find_token

pytestmark = pytest.mark.django_db

ADMIN_VALUE = "operator-chosen-admin-token-1"
ROTATED_VALUE = "operator-chosen-admin-token-2"


def test_sync_creates_keeps_rotates_and_revokes():
    assert sync_bootstrap_tokens({"admin": ADMIN_VALUE, "read": None}) == {"admin": "created", "read": "absent"}
    token = find_token(ADMIN_VALUE)
    assert token.name == "env-admin" and token.role == "admin" and token.source == TokenSource.ENV

    assert sync_bootstrap_tokens({"admin": ADMIN_VALUE}) == {"admin": "unchanged"}

    assert sync_bootstrap_tokens({"admin": ROTATED_VALUE}) == {"admin": "rotated"}
    assert find_token(ADMIN_VALUE) is None
    assert find_token(ROTATED_VALUE).pk == token.pk

    assert sync_bootstrap_tokens({"admin": None}) == {"admin": "revoked"}
    assert ApiToken.objects.get(pk=token.pk).state() == "revoked"

    # The revoked secret is never revived, even by setting it again...
    assert sync_bootstrap_tokens({"admin": ROTATED_VALUE}) == {"admin": "stays_revoked"}
    assert ApiToken.objects.get(pk=token.pk).state() == "revoked"
    # ...a new value is a new secret: it rotates the token and makes it active.
    assert sync_bootstrap_tokens({"admin": ADMIN_VALUE}) == {"admin": "rotated"}
    assert ApiToken.objects.get(pk=token.pk).state() == "active"


def test_a_token_revoked_through_the_api_stays_revoked_when_the_bootstrap_runs_again(api, caplog):
    assert sync_bootstrap_tokens({"backup": ADMIN_VALUE}) == {"backup": "created"}
    token = find_token(ADMIN_VALUE)
    assert api("admin").delete(f"/api/v1/tokens/{token.pk}").status_code == 204

    with caplog.at_level("WARNING", logger="accounts.bootstrap"):
        assert sync_bootstrap_tokens({"backup": ADMIN_VALUE}) == {"backup": "stays_revoked"}

    assert find_token(ADMIN_VALUE).state() == "revoked"
    [line] = [record.getMessage() for record in caplog.records if "stays revoked" in record.getMessage()]
    assert line.startswith("bootstrap tokens: env-backup stays revoked")
    assert "set a new value" in line and ADMIN_VALUE not in line


def test_bootstrap_token_authenticates_with_its_role(client, settings):
    from accounts.bootstrap import reset_sync_state

    settings.BOOTSTRAP_TOKENS = {"admin": None, "backup": "backup-token-from-env-123", "read": None}
    reset_sync_state()  # the next authentication syncs, as a freshly started process does
    response = client.get("/api/v1/tokens", HTTP_AUTHORIZATION="Bearer backup-token-from-env-123")
    assert response.status_code == 403  # authenticated as backup, below admin
    assert ApiToken.objects.get(name="env-backup").last_used_at is not None
    reset_sync_state()
