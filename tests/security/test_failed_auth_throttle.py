"""Failed authentication is throttled per client (429 + Retry-After, in the error shape);
valid tokens never are. The counter is shared by every API process (Redis), and admin
password logins are throttled by django-axes (attempts in the database)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from django.test import RequestFactory
from django.utils import timezone

from accounts.throttle import client_address, client_ip, record_failure
from accounts.tokens import create_token
from tests.support.fixtures_api import BOGUS_TOKEN

ERROR_KEYS = {"code", "message", "detail"}


def assert_throttled(response, window: int) -> None:
    assert response.status_code == 429, response.content[:300]
    body = response.json()
    assert set(body) == ERROR_KEYS and body["code"] == "too_many_failures"
    wait = int(response["Retry-After"])
    assert 1 <= wait <= window and body["detail"] == {"retry_after": wait}


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_failures_are_counted_per_client_from_its_first_failure(settings):
    settings.AUTH_FAILURE_LIMIT, settings.AUTH_FAILURE_WINDOW_SECONDS = 3, 60
    clock = Clock(6_000_000.0)
    attacker = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7")
    neighbour = RequestFactory().get("/", REMOTE_ADDR="203.0.113.8")

    assert record_failure(attacker, clock=clock) is None  # opens the attacker's window
    clock.now += 10
    assert [record_failure(attacker, clock=clock) for _ in range(2)] == [None, None]
    assert record_failure(attacker, clock=clock) == 50  # seconds left in the window
    clock.now += 20
    assert record_failure(attacker, clock=clock) == 30
    assert record_failure(neighbour, clock=clock) is None  # another client counts on its own


def test_the_client_is_the_remote_address_unless_proxies_are_trusted(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9")
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(request) == "10.0.0.2"  # anyone can write X-Forwarded-For
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_address(request) == "203.0.113.9"  # what our one proxy saw
    garbage = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="not-an-address")
    assert client_address(garbage) == "10.0.0.2"
    # No address at all (a unix socket): no IP for the audit log or django-axes' IP columns.
    assert client_ip(RequestFactory().get("/", REMOTE_ADDR="")) is None


@pytest.mark.django_db
def test_bad_tokens_are_throttled_and_valid_tokens_are_not(api, tokens, client, settings):
    settings.AUTH_FAILURE_LIMIT, settings.AUTH_FAILURE_WINDOW_SECONDS = 5, 60
    for _ in range(20):  # valid requests never count
        assert api("read").get("/api/v1/volumes").status_code == 200
    for _ in range(settings.AUTH_FAILURE_LIMIT):
        assert api("bad").get("/api/v1/volumes").status_code == 401
    assert_throttled(api("bad").get("/api/v1/volumes"), 60)
    assert_throttled(api("bad", bearer=True).post("/api/v1/tokens", {}, format="json"), 60)
    # The same client with a valid token is served at once, with either header.
    assert api("read").get("/api/v1/volumes").status_code == 200
    assert api("admin", bearer=True).get("/api/v1/tokens").status_code == 200
    # A request without any token is not a failed authentication: still a plain 401.
    assert client.get("/api/v1/volumes").json()["code"] == "not_authenticated"


@pytest.mark.django_db
def test_expired_and_revoked_tokens_count_as_failures(client, settings):
    settings.AUTH_FAILURE_LIMIT = 2
    expired = create_token("expired", "read", expires_at=timezone.now() - timedelta(days=1))[1]
    revoked_row, revoked = create_token("revoked", "read")
    revoked_row.revoke()
    assert client.get("/api/v1/volumes", HTTP_X_API_TOKEN=expired).json()["code"] == "token_expired"
    assert client.get("/api/v1/volumes", HTTP_X_API_TOKEN=revoked).json()["code"] == "token_revoked"
    assert_throttled(client.get("/api/v1/volumes", HTTP_X_API_TOKEN=expired), settings.AUTH_FAILURE_WINDOW_SECONDS)


@pytest.mark.django_db
def test_wrong_metrics_tokens_are_throttled(client, settings):
    settings.METRICS_TOKEN, settings.AUTH_FAILURE_LIMIT = "metrics-token-0123456789abcdef", 3
    wrong = {"HTTP_AUTHORIZATION": "Bearer wrong-metrics-token"}
    assert [client.get("/metrics", **wrong).status_code for _ in range(3)] == [401, 401, 401]
    assert_throttled(client.get("/metrics", **wrong), settings.AUTH_FAILURE_WINDOW_SECONDS)
    right = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    assert right.status_code == 200


@pytest.mark.django_db
def test_wrong_admin_passwords_lock_the_client_out(client, django_user_model, settings):
    django_user_model.objects.create_superuser("root", "root@example.com", "correct horse battery staple")
    wrong = {"username": "root", "password": "not-the-password"}
    statuses = [client.post("/admin/login/", wrong).status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, with an error
    locked = client.post("/admin/login/", {"username": "root", "password": "correct horse battery staple"})
    assert locked.status_code == 429
    assert set(locked.json()) == ERROR_KEYS and locked.json()["code"] == "too_many_failures"
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())


@pytest.mark.slow
def test_the_counter_is_shared_by_gunicorn_workers_and_survives_a_restart(gunicorn_server, tokens):
    limit = 10
    server = gunicorn_server(workers=2, env={"AUTH_FAILURE_LIMIT": str(limit), "AUTH_FAILURE_WINDOW_SECONDS": "600"})
    bad = {"X-API-TOKEN": BOGUS_TOKEN}

    def status(headers) -> int:
        # A new connection per request, so the kernel spreads them over both workers.
        return requests.get(f"{server.url}/api/v1/volumes", headers=headers, timeout=10).status_code

    first = [status(bad) for _ in range(6)]
    server.restart()  # fresh processes: a per-process counter would start again from zero
    then = [status(bad) for _ in range(24)]
    assert first + then == [401] * limit + [429] * 20
    assert status({"X-API-TOKEN": tokens["read"]}) == 200


@pytest.mark.slow
def test_admin_login_lockout_through_gunicorn(gunicorn_server, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "correct horse battery staple")
    server = gunicorn_server(workers=2, env={"ADMIN_LOGIN_FAILURE_LIMIT": "3"})
    statuses = []
    for _ in range(6):
        session = requests.Session()  # a browser per attempt: cookies do not identify the client
        form = session.get(f"{server.url}/admin/login/", timeout=10).text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        response = session.post(f"{server.url}/admin/login/", timeout=10,
                                data={"username": "root", "password": "wrong", "csrfmiddlewaretoken": csrf},
                                headers={"Referer": f"{server.url}/admin/login/"})
        statuses.append(response.status_code)
    assert statuses == [200, 200, 429, 429, 429, 429]
    assert response.json()["code"] == "too_many_failures" and int(response.headers["Retry-After"]) > 0
