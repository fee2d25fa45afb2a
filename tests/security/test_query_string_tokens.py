"""Tokens in URL query strings are refused (400) and never reach a log line verbatim, not
even gunicorn's access log, which writes the request line of every request."""

from __future__ import annotations

import pytest
import requests

from accounts.query_tokens import query_string_carries_token

TOKEN_SHAPED = "sbp_" + "A" * 43


@pytest.mark.parametrize("query", [
    "token=anything", "TOKEN=x", "api_token=x", "access_token=x", "api_key=x", "x-api-token=x", "bearer=",
    f"page=2&path={TOKEN_SHAPED}", f"q={TOKEN_SHAPED}",
])
def test_credentials_in_query_strings_are_recognised(query):
    assert query_string_carries_token(query)


@pytest.mark.parametrize("query", ["", "page=2", "path=sbp_notes.txt", "path=sbp_backup_2026-12-01", "tokens=3"])
def test_ordinary_query_strings_pass(query):
    assert not query_string_carries_token(query)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/volumes", "/api/v1/tokens", "/metrics", "/health", "/admin/login/"])
def test_a_token_in_the_query_string_is_a_400_even_with_a_valid_header(api, tokens, url):
    response = api("admin").get(f"{url}?token={tokens['admin']}")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message", "detail"} and body["code"] == "token_in_query_string"
    assert tokens["admin"] not in response.content.decode()


@pytest.mark.django_db
def test_a_listing_with_an_ordinary_query_is_served(api):
    assert api("read").get("/api/v1/volumes?page=1").status_code == 200


@pytest.mark.slow
def test_gunicorns_access_log_masks_tokens_in_urls(gunicorn_server, tokens):
    server = gunicorn_server(workers=1)
    leaked = [tokens["read"], "operator-chosen-query-secret"]
    first = requests.get(f"{server.url}/api/v1/volumes?token={leaked[0]}", timeout=10)
    second = requests.get(f"{server.url}/metrics?page=1&access_token={leaked[1]}", timeout=10,
                          headers={"Referer": f"https://example.com/?token={leaked[1]}"})
    assert (first.status_code, second.status_code) == (400, 400)
    ok = requests.get(f"{server.url}/api/v1/volumes?page=1", headers={"X-API-TOKEN": tokens["read"]}, timeout=10)
    assert ok.status_code == 200
    log = server.log()
    assert '"GET /api/v1/volumes?token=[REDACTED] HTTP/1.1" 400' in log, log[-2000:]
    assert "access_token=[REDACTED]" in log
    for secret in leaked:
        assert secret not in log
