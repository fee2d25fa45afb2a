"""Token changes made in the Django admin are audited with the staff user as actor."""

from __future__ import annotations

import pytest

from accounts.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db


def test_creating_and_revoking_a_token_in_the_admin_is_audited(admin_client):
    created = admin_client.post("/admin/accounts/apitoken/add/", {"name": "ci", "role": "read", "expires_at_0": "",
                                                                  "expires_at_1": ""})
    assert created.status_code == 302
    token = ApiToken.objects.get(name="ci")
    admin_client.post("/admin/accounts/apitoken/", {"action": "revoke_tokens", "_selected_action": [str(token.pk)]})
    token.refresh_from_db()
    assert token.revoked_at is not None
    events = [(e.action, e.actor, e.actor_type, e.target_type, e.target_id, e.status_code)
              for e in AuditEvent.objects.order_by("id")]
    assert events == [("admin:create_token", "admin", "user", "tokens", str(token.pk), 201),
                      ("admin:revoke_token", "admin", "user", "tokens", str(token.pk), 204)]
