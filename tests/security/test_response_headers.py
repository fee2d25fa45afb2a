"""Content-Security-Policy on pages (admin, API docs, browsable API), a sandboxing policy on
everything else, and `Cache-Control: no-store` on API answers."""

from __future__ import annotations

import re

import pytest

from storage_platform.security_headers import OTHER_POLICY, PAGE_POLICY

pytestmark = pytest.mark.django_db


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


def test_the_page_policy_allows_this_origin_only():
    policy = directives(PAGE_POLICY)
    sources = [value for values in policy.values() for value in values]
    assert not [source for source in sources if "://" in source or "*" in source or source.endswith(":")
                and source != "data:"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]


@pytest.mark.parametrize("path", ["/admin/login/", "/api-auth/login/", "/api/docs/"])
def test_pages_carry_the_page_policy(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == PAGE_POLICY


def test_the_docs_page_loads_nothing_from_other_origins_and_runs_no_inline_script(client):
    html = client.get("/api/docs/").content.decode()
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script would be blocked by the CSP"
    script = next(source for source in sources if "script" in source and "static" not in source)
    init = client.get(script)
    assert init.status_code == 200 and init["Content-Type"].startswith("application/javascript")
    # The Swagger UI itself comes from the pinned sidecar package, not from a copy of ours.
    assert any(asset.startswith("/static/drf_spectacular_sidecar/") for asset in sources), sources


def test_the_browsable_api_is_a_page(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("viewer", password="pw", is_staff=True))
    response = client.get("/api/v1/volumes", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert response["Content-Security-Policy"] == PAGE_POLICY
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("role, path, status", [
    ("read", "/api/v1/volumes", 200),
    ("admin", "/api/v1/tokens", 200),
    ("bad", "/api/v1/jobs", 401),
    ("read", "/api/v1/tokens", 403),
])
def test_api_answers_are_never_stored_and_are_sandboxed(api, role, path, status):
    response = api(role).get(path)
    assert response.status_code == status
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Security-Policy"] == OTHER_POLICY


def test_a_downloaded_html_file_cannot_run_script_in_our_origin(api, make_volume):
    volume = make_volume("hostile", files={"index.html": b"<script>alert(document.cookie)</script>"})
    response = api("read").get(f"/api/v1/volumes/{volume.id}/files/index.html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert response["Content-Security-Policy"] == OTHER_POLICY
    assert "sandbox" in OTHER_POLICY and "default-src 'none'" in OTHER_POLICY
    assert response["Content-Disposition"].startswith("attachment")
    assert "no-store" in response["Cache-Control"]


def test_system_endpoints_are_not_pages(client):
    assert client.get("/health")["Content-Security-Policy"] == OTHER_POLICY


def test_the_front_page_and_redoc_are_pages_and_only_redoc_may_start_a_blob_worker(client):
    from storage_platform.security_headers import REDOC_POLICY

    assert client.get("/", HTTP_ACCEPT="text/html")["Content-Security-Policy"] == PAGE_POLICY
    redoc = client.get("/api/redoc/")
    assert redoc.status_code == 200
    assert redoc["Content-Security-Policy"] == REDOC_POLICY
    assert "blob:" not in PAGE_POLICY
