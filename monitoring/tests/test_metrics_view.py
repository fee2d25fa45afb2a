"""GET /metrics: django-prometheus's metrics plus the catalog, optionally behind a bearer token."""

from __future__ import annotations

import pytest

from monitoring.tests.factories import make_backup, make_volume, samples, value

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-0123456789abcdef"


def test_metrics_are_open_when_no_token_is_configured(client, settings):
    settings.METRICS_TOKEN = None
    make_backup(make_volume("open"))

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    parsed = samples(response.content.decode())
    assert value(parsed, "backup_operations_total", result="success") == 1
    assert value(parsed, "storage_volume_count") == 1
    # django-prometheus keeps its HTTP and database metrics in the same answer.
    assert any(name.startswith("django_http_requests") for name, _ in parsed)
    assert any(name == "platform_ready" for name, _ in parsed)


def test_a_configured_token_is_required(client, settings):
    settings.METRICS_TOKEN = TOKEN

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    other_scheme = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")
    right = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    for response in (missing, wrong, other_scheme):
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"
        assert set(response.json()) == {"code", "message", "detail"}
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in response.content.decode()
    assert right.status_code == 200
    assert b"storage_volume_count" in right.content


def test_metrics_refuse_writes_in_the_error_shape(client, settings):
    settings.METRICS_TOKEN = None
    response = client.post("/metrics")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
