"""The role matrix: every route under /api/v1/ × every method × {none, bad, read, backup, admin}.

Routes come from the URL conf, so a new endpoint is tested the moment it exists; the test
FAILS for a route or method missing from `EXPECTED_MINIMUM_ROLE`, so nobody can add an
endpoint without stating (and this test checking) who may call it.

For each (route, method) with minimum role R:
* no token and a bogus token -> 401;
* a valid token below R -> 403;
* a token at or above R -> neither 401 nor 403 (404 for the made-up ids, 400 for the empty
  body, 405... anything else is the endpoint's business).

To add a route: run this test, copy the suggested line from the failure message (it shows the
view's declared `read_role`/`write_role`/`action_roles`), and check it is what you meant.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

from accounts.roles import ROLE_RANK, Role

API_PREFIX = "/api/v1/"
PRINCIPALS = (None, "bad", "read", "backup", "admin")
READ, BACKUP, ADMIN = Role.READ.value, Role.BACKUP.value, Role.ADMIN.value

# (route with {placeholders}, METHOD) -> the least role allowed to call it.
EXPECTED_MINIMUM_ROLE: dict[tuple[str, str], str] = {
    # accounts
    ("/api/v1/tokens", "GET"): ADMIN,
    ("/api/v1/tokens", "POST"): ADMIN,
    ("/api/v1/tokens/{pk}", "GET"): ADMIN,
    ("/api/v1/tokens/{pk}", "DELETE"): ADMIN,
    ("/api/v1/audit", "GET"): ADMIN,
    ("/api/v1/audit/{pk}", "GET"): ADMIN,
    # backups and jobs (backups.views)
    ("/api/v1/backups", "GET"): READ,
    ("/api/v1/backups", "POST"): BACKUP,
    ("/api/v1/backups/{pk}", "GET"): READ,
    ("/api/v1/backups/{pk}", "DELETE"): ADMIN,
    ("/api/v1/backups/{pk}/restore", "POST"): ADMIN,
    ("/api/v1/backups/{pk}/verify", "POST"): BACKUP,
    ("/api/v1/backups/{pk}/drill", "POST"): BACKUP,
    ("/api/v1/backups/{pk}/files", "GET"): READ,
    ("/api/v1/backups/{pk}/download", "GET"): READ,
    ("/api/v1/backup", "POST"): BACKUP,
    ("/api/v1/verify", "POST"): BACKUP,
    ("/api/v1/volumes/{id}/backups", "GET"): READ,
    ("/api/v1/volumes/{id}/backups", "POST"): BACKUP,
    ("/api/v1/jobs", "GET"): READ,
    ("/api/v1/jobs/{pk}", "GET"): READ,
    ("/api/v1/jobs/{pk}/cancel", "POST"): BACKUP,
    # the repository's keys (backups.views.repository_keys)
    ("/api/v1/repository-keys", "GET"): ADMIN,
    ("/api/v1/repository-keys", "POST"): ADMIN,
    ("/api/v1/repository-keys/rotate", "POST"): ADMIN,
    ("/api/v1/repository-keys/{pk}", "DELETE"): ADMIN,
    # policies (backups.views)
    ("/api/v1/policies", "GET"): READ,
    ("/api/v1/policies", "POST"): ADMIN,
    ("/api/v1/policies/{pk}", "GET"): READ,
    ("/api/v1/policies/{pk}", "PUT"): ADMIN,
    ("/api/v1/policies/{pk}", "PATCH"): ADMIN,
    ("/api/v1/policies/{pk}", "DELETE"): ADMIN,
    ("/api/v1/policies/{pk}/replicate", "POST"): BACKUP,
    ("/api/v1/replication-targets", "GET"): READ,
    # volumes (volumes.views): CRUD is admin, reading is read
    ("/api/v1/volumes", "GET"): READ,
    ("/api/v1/volumes", "POST"): ADMIN,
    ("/api/v1/volumes/{id}", "GET"): READ,
    ("/api/v1/volumes/{id}", "PUT"): ADMIN,
    ("/api/v1/volumes/{id}", "PATCH"): ADMIN,
    ("/api/v1/volumes/{id}", "DELETE"): ADMIN,
    ("/api/v1/volumes/{id}/refresh-usage", "POST"): ADMIN,
    # file data plane: download/list is read, writing data into a volume is admin
    ("/api/v1/volumes/{id}/files", "GET"): READ,
    ("/api/v1/volumes/{id}/files/{file_path}", "GET"): READ,
    ("/api/v1/volumes/{id}/files/{file_path}", "PUT"): ADMIN,
    ("/api/v1/volumes/{id}/files/{file_path}", "DELETE"): ADMIN,
}

# Sample values tried for URL placeholders until the URL resolves to the same view.
SAMPLE_VALUES = (str(uuid.UUID(int=0x5A)), "1", "sample")
PROBED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _pattern_text(pattern) -> str:
    return str(pattern.pattern)


def _normalise(raw: str) -> str | None:
    """A route's display form (`/api/v1/volumes/{pk}`), or None for format-suffix duplicates."""
    if "(?P<format>" in raw or "<drf_format_suffix" in raw:
        return None
    text = raw.replace("^", "").replace("$", "").replace("\\Z", "")
    text = re.sub(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)", r"{\1}", text)  # regex groups
    text = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text)  # path converters
    text = text.replace("/?", "/").replace("\\.", ".").replace("\\", "")
    text = re.sub(r"/+", "/", "/" + text)
    return text.rstrip("/") or "/"


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + _pattern_text(entry))
        elif isinstance(entry, URLPattern):
            yield prefix + _pattern_text(entry), entry


def _view_methods(callback) -> tuple[str, ...] | None:
    """HTTP methods the view answers, or None when it is not a DRF view (unknowable)."""
    actions = getattr(callback, "actions", None)
    if actions:
        return tuple(sorted(method.upper() for method in actions if method not in ("head", "options")))
    view_class = getattr(callback, "cls", None)
    if view_class is None:
        return None
    return tuple(method.upper() for method in PROBED_METHODS
                 if method.lower() in view_class.http_method_names and hasattr(view_class, method.lower()))


def _concrete_url(route: str, callback) -> str | None:
    for sample in SAMPLE_VALUES:
        base = re.sub(r"\{\w+\}", sample, route)
        for candidate in (base, base + "/"):
            try:
                match = resolve(candidate)
            except Resolver404:
                continue
            if match.func is callback:
                return candidate
    return None


def _declared_roles(callback) -> str:
    """What the view declares, to help whoever fills in the table."""
    view_class = getattr(callback, "cls", None)
    if view_class is None:
        return "not a DRF view: RolePermission does not protect it"
    declared = [f"read_role={str(getattr(view_class, 'read_role', READ))}",
                f"write_role={str(getattr(view_class, 'write_role', ADMIN))}"]
    if getattr(view_class, "action_roles", None):
        declared.append(f"action_roles={ {key: str(value) for key, value in view_class.action_roles.items()} }")
    if getattr(callback, "actions", None):
        declared.append(f"actions={callback.actions}")
    return " ".join(declared)


def _declared_minimum(callback, method: str) -> str:
    """The role the view itself declares for `method` (what RolePermission will enforce)."""
    view_class = callback.cls
    action = (getattr(callback, "actions", None) or {}).get(method.lower())
    action_roles = getattr(view_class, "action_roles", {}) or {}
    if action in action_roles:
        return str(action_roles[action])
    if method in ("GET", "HEAD", "OPTIONS"):
        return str(getattr(view_class, "read_role", READ))
    return str(getattr(view_class, "write_role", ADMIN))


def api_routes() -> list[dict]:
    """Every (route, method) under /api/v1/ with a URL that resolves to its view."""
    routes = []
    for raw, entry in _walk(get_resolver().url_patterns):
        route = _normalise(raw)
        if route is None or not (route + "/").startswith(API_PREFIX):
            continue
        methods = _view_methods(entry.callback)
        routes.append({"route": route, "callback": entry.callback, "methods": methods,
                       "url": _concrete_url(route, entry.callback)})
    return routes


ROUTES = api_routes()
CASES = [(item["route"], method, item["url"]) for item in ROUTES for method in (item["methods"] or ())]


def test_every_api_route_is_in_the_expected_role_table():
    missing, unusable = [], []
    for item in ROUTES:
        if item["methods"] is None:
            unusable.append(f"{item['route']}: {_declared_roles(item['callback'])}")
            continue
        if item["url"] is None:
            unusable.append(f"{item['route']}: no sample URL resolves to it (extend SAMPLE_VALUES)")
        for method in item["methods"]:
            if (item["route"], method) not in EXPECTED_MINIMUM_ROLE:
                suggestion = _declared_minimum(item["callback"], method).upper()
                missing.append(f'    ("{item["route"]}", "{method}"): {suggestion},  # declared: {_declared_roles(item["callback"])}')
    assert not unusable, "API routes the matrix cannot test:\n" + "\n".join(unusable)
    assert not missing, "API routes missing from EXPECTED_MINIMUM_ROLE:\n" + "\n".join(missing)


def test_the_expected_role_table_has_no_stale_entries():
    existing = {(route, method) for route, method, _ in CASES}
    stale = sorted(set(EXPECTED_MINIMUM_ROLE) - existing)
    assert not stale, f"EXPECTED_MINIMUM_ROLE lists routes that no longer exist: {stale}"


def test_the_matrix_covers_the_token_api():
    # Guards the machinery itself: if route discovery broke, the matrix would pass vacuously.
    assert ("/api/v1/tokens", "POST", "/api/v1/tokens") in CASES
    assert any(route == "/api/v1/tokens/{pk}" and method == "DELETE" for route, method, _ in CASES)


def _call(client, method: str, url: str):
    if method in ("POST", "PUT", "PATCH"):
        return getattr(client, method.lower())(url, {}, format="json")
    return getattr(client, method.lower())(url)


@pytest.mark.django_db
@pytest.mark.parametrize("route, method, url", [case for case in CASES if case[:2] in EXPECTED_MINIMUM_ROLE],
                         ids=lambda value: value if isinstance(value, str) else "")
def test_role_matrix(api, settings, tmp_path, own_repository, route, method, url):
    # An endpoint may switch maintenance mode on, or rotate the repository's key: keep that
    # switch, and that repository, inside this test.
    settings.MAINTENANCE_FILE = tmp_path / "maintenance"
    minimum = EXPECTED_MINIMUM_ROLE[(route, method)]
    outcomes = {}
    for principal in PRINCIPALS:
        response = _call(api(principal), method, url)
        outcomes[principal] = response.status_code
        if principal in (None, "bad"):
            expected = "401"
            ok = response.status_code == 401
        elif ROLE_RANK[principal] < ROLE_RANK[minimum]:
            expected = "403"
            ok = response.status_code == 403
        else:
            expected = "not 401/403"
            ok = response.status_code not in (401, 403)
        assert ok, f"{method} {url} as {principal or 'no token'}: {response.status_code}, expected {expected} (minimum role {minimum})"
        if response.status_code in (401, 403):
            assert set(response.json()) == {"code", "message", "detail"}
