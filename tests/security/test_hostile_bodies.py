"""Hostile request bodies are a 4xx in the error shape, never a 500: nesting, size, field count.

Through Django's test client on several endpoints (DRF views and the admin login form), and
through real gunicorn, where the body arrives on a socket. The volumes data plane still
takes uploads larger than the body limit: it streams them.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import requests

ERROR_KEYS = {"code", "message", "detail"}
LIMIT = 2_621_440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE default
# (path, role) of JSON/form endpoints that parse a body.
ENDPOINTS = [
    ("/api/v1/tokens", "admin"),
    ("/api/v1/volumes", "admin"),
    ("/api/v1/policies", "admin"),
    ("/api/v1/backup", "backup"),
]


def deep_json(levels: int = 1000) -> str:
    return '{"name": ' + "[" * levels + "]" * levels + "}"


def big_json() -> str:
    return json.dumps({"name": "x" * (LIMIT + 1024)})


def many_fields_form(count: int = 1001) -> str:
    return "&".join(f"field{number}=1" for number in range(count))


def multipart(fields: dict[str, str | bytes]) -> tuple[bytes, str]:
    """A multipart body; bytes values are file parts (Django spools those to disk unlimited)."""
    boundary = "hostile-boundary-7d2f"
    parts = []
    for name, value in fields.items():
        disposition = f'form-data; name="{name}"'
        if isinstance(value, bytes):
            disposition += f'; filename="{name}.bin"\r\nContent-Type: application/octet-stream'
        data = value.encode() if isinstance(value, str) else value
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def hostile_bodies() -> list[tuple[str, bytes | str, str, int, str]]:
    """(case, body, content type, expected status, expected code)."""
    many_parts, many_type = multipart({f"field{number}": "1" for number in range(1001)})
    big_part, big_type = multipart({"name": "x" * (LIMIT + 1024)})
    big_file, big_file_type = multipart({"name": b"\x00" * (LIMIT + 1024)})
    return [
        ("json nested 1000 deep", deep_json(1000), "application/json", 400, "json_too_deep"),
        ("json nested 100 deep", deep_json(100), "application/json", 400, "json_too_deep"),
        ("json over the size limit", big_json(), "application/json", 413, "payload_too_large"),
        ("form with 1001 fields", many_fields_form(), "application/x-www-form-urlencoded", 400, "too_many_fields"),
        ("form over the size limit", "name=" + "x" * (LIMIT + 1024), "application/x-www-form-urlencoded",
         413, "payload_too_large"),
        ("multipart with 1001 fields", many_parts, many_type, 400, "too_many_fields"),
        ("multipart field over the size limit", big_part, big_type, 413, "payload_too_large"),
        ("multipart file over the size limit", big_file, big_file_type, 413, "payload_too_large"),
    ]


CASES = hostile_bodies()


@pytest.mark.django_db
@pytest.mark.parametrize("path, role", ENDPOINTS, ids=[path for path, _ in ENDPOINTS])
@pytest.mark.parametrize("case, body, content_type, status, code", CASES, ids=[case[0] for case in CASES])
def test_hostile_bodies_are_refused_in_the_error_shape(api, path, role, case, body, content_type, status, code):
    response = api(role).generic("POST", path, body, content_type=content_type)
    assert response.status_code == status, response.content[:300]
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["code"] == code


@pytest.mark.django_db
def test_a_json_body_nested_within_the_limit_is_an_ordinary_validation_error(api):
    response = api("admin").generic("POST", "/api/v1/tokens", deep_json(20), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


@pytest.mark.django_db
@pytest.mark.parametrize("case, body, content_type, status, code",
                         [case for case in CASES if "json" not in case[0]], ids=lambda value: str(value)[:40])
def test_hostile_admin_login_forms_are_refused_in_the_error_shape(client, case, body, content_type, status, code):
    # Not a DRF view: Django's own request parsing raises, handler400 renders.
    response = client.generic("POST", "/admin/login/", body, content_type=content_type)
    assert response.status_code == status, response.content[:300]
    assert set(response.json()) == ERROR_KEYS and response.json()["code"] == code


@pytest.mark.django_db
def test_a_query_string_with_1001_parameters_is_a_400(api):
    response = api("read").get("/api/v1/volumes?" + many_fields_form())
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_fields"


@pytest.mark.django_db
def test_uploads_larger_than_the_body_limit_still_stream_into_a_volume(api, make_volume):
    volume = make_volume("big-upload", size_gb=1)
    content = os.urandom(LIMIT * 2)
    response = api("admin").put(f"/api/v1/volumes/{volume.id}/files/big.bin", content,
                                content_type="application/octet-stream")
    assert response.status_code == 201, response.content[:300]
    assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()


@pytest.mark.slow
def test_hostile_bodies_through_gunicorn(gunicorn_server, tokens, make_volume):
    server = gunicorn_server(workers=1)
    session = requests.Session()
    for path, role in ENDPOINTS[:2]:
        for case, body, content_type, status, code in CASES:
            response = session.post(f"{server.url}{path}", data=body, timeout=30,
                                    headers={"X-API-TOKEN": tokens[role], "Content-Type": content_type})
            assert response.status_code == status, (path, case, response.text[:300])
            assert response.json()["code"] == code and set(response.json()) == ERROR_KEYS
    # The process is still healthy, and a large upload is still accepted and streamed.
    assert session.get(f"{server.url}/health", timeout=10).status_code == 200
    volume = make_volume("big-upload-live", size_gb=1)
    content = os.urandom(LIMIT * 2)
    upload = session.put(f"{server.url}/api/v1/volumes/{volume.id}/files/big.bin", data=content, timeout=60,
                         headers={"X-API-TOKEN": tokens["admin"], "Content-Type": "application/octet-stream"})
    assert upload.status_code == 201, upload.text[:300]
    assert upload.json()["sha256"] == hashlib.sha256(content).hexdigest()
    assert "Traceback" not in server.log() and "Internal Server Error" not in server.log()
