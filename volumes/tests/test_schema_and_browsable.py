"""The volume and file endpoints are described in the OpenAPI schema and usable from the
browsable API with a Django admin session."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_schema_describes_volumes_and_binary_uploads(api):
    response = api("read").get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    upload = schema["paths"]["/api/v1/volumes/{id}/files/{file_path}"]["put"]
    assert upload["operationId"] == "volumes_files_upload"
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert "/api/v1/volumes/{id}/files/" in schema["paths"]
    assert "post" in schema["paths"]["/api/v1/volumes/"]


def test_browsable_api_with_an_admin_session(tmp_path):
    user = get_user_model().objects.create_superuser("browser", "b@example.com", "secret-pass-123")
    client = APIClient()
    client.force_login(user)
    created = client.post("/api/v1/volumes", {"name": "browsed", "size_gb": 1}, format="json")
    assert created.status_code == 201
    page = client.get("/api/v1/volumes", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b"browsed" in page.content
    upload = client.put("/api/v1/volumes/browsed/files/notes.txt", b"typed in a form", content_type="text/plain")
    assert upload.status_code == 201
    assert Path(created.json()["path"], "notes.txt").read_bytes() == b"typed in a form"
    listing = client.get("/api/v1/volumes/browsed/files/", HTTP_ACCEPT="text/html")
    assert listing.status_code == 200 and b"notes.txt" in listing.content


def test_browsable_forms_offer_the_writable_fields():
    user = get_user_model().objects.create_superuser("former", "f@example.com", "secret-pass-123")
    client = APIClient()
    client.force_login(user)
    page = client.get("/api/v1/volumes", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b'name="size_gb"' in page.content and b'name="rpo_hours"' in page.content


def test_html_form_create_leaves_empty_fields_to_their_defaults():
    user = get_user_model().objects.create_superuser("poster", "p@example.com", "secret-pass-123")
    client = APIClient()
    client.force_login(user)
    response = client.post("/api/v1/volumes", {"name": "from-form", "size_gb": "3", "labels": '{"a": "b"}',
                                               "policy": "", "rpo_hours": "", "pool": "", "node": ""})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["size_gb"], body["labels"], body["policy"], body["pool"]) == (3, {"a": "b"}, "default", "default")
