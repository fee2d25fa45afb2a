"""The front page, the admin's "View site" link, and the API documentation pages served from
the pinned sidecar package with nothing loaded from another origin."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db

EXTERNAL = re.compile(r"""(?:src|href)=["'](?:https?:)?//""")


def test_the_front_page_links_the_ways_in(client):
    page = client.get("/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    for url in ("/admin/", "/api/docs/", "/api/redoc/", "/api/schema/", "/health", "/metrics"):
        assert f'href="{url}"' in html
    assert "python -m storagectl" in html
    as_json = client.get("/", HTTP_ACCEPT="application/json")
    assert as_json.json()["links"]["api_docs"] == "/api/docs/"


def test_view_site_on_the_admin_leads_to_the_front_page(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert re.search(r'<a href="/">View site</a>', html)
    assert admin_client.get("/").status_code == 200


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_load_everything_from_this_site(client, url):
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "/static/drf_spectacular_sidecar/" in html
    assert "<script>" not in html  # no inline script: works under a same-origin CSP


def test_swagger_ui_gets_its_start_script_from_the_site(client):
    script = client.get("/api/docs/", {"script": ""})
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode() and "/api/schema/" in script.content.decode()
