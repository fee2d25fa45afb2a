"""Audit events for mutating requests, and the audit API."""

import pytest

from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_successful_mutation_is_audited_without_secrets(api, tokens):
    response = api("admin").post("/api/v1/tokens", {"name": "audited", "role": "read"}, format="json",
                                 HTTP_X_REQUEST_ID="req-123")
    assert response.status_code == 201
    assert response["X-Request-ID"] == "req-123"
    event = AuditEvent.objects.get()
    assert (event.actor, event.actor_type, event.role) == ("test-admin", "token", "admin")
    assert (event.method, event.status_code, event.result) == ("POST", 201, "success")
    assert event.action == "token-list:create"
    assert (event.target_type, event.target_id) == ("tokens", str(response.json()["id"]))
    assert event.request_id == "req-123" and event.remote_addr == "127.0.0.1"
    stored = " ".join(str(value) for value in AuditEvent.objects.values().get().values())
    assert response.json()["token"] not in stored and tokens["admin"] not in stored


def test_refused_and_anonymous_mutations_are_audited(api):
    api("read").delete("/api/v1/tokens/42")
    api(None).delete("/api/v1/tokens/43")
    api("bad").post("/api/v1/tokens", {}, format="json")
    events = list(AuditEvent.objects.order_by("id").values_list("actor", "status_code", "result", "target_id"))
    assert events == [("test-read", 403, "failure", "42"), ("anonymous", 401, "failure", "43"),
                      ("anonymous", 401, "failure", "")]


def test_reads_are_not_audited_and_request_id_is_generated(api):
    response = api("admin").get("/api/v1/tokens", HTTP_X_REQUEST_ID="bad id with spaces")
    assert AuditEvent.objects.count() == 0
    assert len(response["X-Request-ID"]) == 32 and " " not in response["X-Request-ID"]


def test_audit_api_is_admin_only_and_filters(api):
    api("admin").post("/api/v1/tokens", {"name": "one", "role": "read"}, format="json")
    api("read").delete("/api/v1/tokens/7")
    assert api("backup").get("/api/v1/audit").status_code == 403
    everything = api("admin").get("/api/v1/audit").json()
    assert everything["count"] == 2
    assert everything["results"][0]["actor"] == "test-read"  # newest first
    failures = api("admin").get("/api/v1/audit", {"result": "failure"}).json()
    assert [event["target_id"] for event in failures["results"]] == ["7"]
    by_actor = api("admin").get("/api/v1/audit", {"actor": "test-admin"}).json()
    assert by_actor["count"] == 1
    by_target = api("admin").get("/api/v1/audit", {"target": "tokens:7"}).json()
    assert by_target["count"] == 1
    later = api("admin").get("/api/v1/audit", {"since": "2999-01-01T00:00:00Z"}).json()
    assert later["count"] == 0
    bad = api("admin").get("/api/v1/audit", {"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"


def test_nul_in_path_is_audited_visibly(api):
    response = api("admin").delete("/api/v1/tokens/1%00x")
    assert response.status_code < 500
    event = AuditEvent.objects.get()
    assert "\x00" not in event.path and "\\x00" in event.path
    assert AuditEvent.objects.count() == 1  # the connection is still usable after the request


@pytest.mark.parametrize("parameter", ["actor", "target", "target_id", "target_type"])
def test_nul_in_audit_filters_is_a_4xx(api, parameter):
    response = api("admin").get("/api/v1/audit", {parameter: "a\x00b"})
    assert 400 <= response.status_code < 500
    assert set(response.json()) == {"code", "message", "detail"}


def test_mutations_refused_by_maintenance_mode_are_audited(api, settings, tmp_path):
    settings.MAINTENANCE_FILE = tmp_path / "maintenance"
    settings.MAINTENANCE_FILE.touch()
    response = api("admin").post("/api/v1/tokens", {"name": "during-upgrade", "role": "read"}, format="json")
    assert response.status_code == 503
    assert response["X-Request-ID"]
    event = AuditEvent.objects.get()
    assert (event.status_code, event.result, event.path) == (503, "failure", "/api/v1/tokens")


def test_prune_audit_deletes_only_old_events():
    import io
    from datetime import timedelta

    from django.core.management import CommandError, call_command
    from django.utils import timezone

    common = dict(actor="a", actor_type="token", method="POST", path="/api/v1/x", action="x", status_code=201,
                  result="success")
    AuditEvent.objects.create(created_at=timezone.now() - timedelta(days=40), **common)
    recent = AuditEvent.objects.create(created_at=timezone.now() - timedelta(days=5), **common)
    call_command("prune_audit", "--older-than-days", "30", stdout=io.StringIO())
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [recent.pk]
    with pytest.raises(CommandError):
        call_command("prune_audit", "--older-than-days", "0", stdout=io.StringIO())


def test_behind_trusted_proxies_the_client_address_is_audited(api, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    api("read").delete("/api/v1/tokens/7", HTTP_X_FORWARDED_FOR="198.51.100.4, 203.0.113.20")
    settings.TRUSTED_PROXY_COUNT = 0  # X-Forwarded-For is anyone's to write: not believed
    api("read").delete("/api/v1/tokens/8", HTTP_X_FORWARDED_FOR="203.0.113.20")
    assert list(AuditEvent.objects.order_by("id").values_list("remote_addr", flat=True)) == ["203.0.113.20",
                                                                                             "127.0.0.1"]
