"""The OpenAPI document lists the responses the API really gives (storage_platform/openapi.py).

The fuzz test (tests/test_api_fuzz.py) checks the document against a live server; these
tests pin down the rules that put each error status on each operation."""

from __future__ import annotations

import pytest
from rest_framework.throttling import AnonRateThrottle

from storage_platform.openapi import ERROR_REF, add_error_responses

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, items in schema["paths"].items():
        for method, operation in items.items():
            if method in METHODS:
                yield path, method, operation


def json_schema(response) -> dict:
    return response["content"]["application/json"]["schema"]


def test_the_error_component_is_the_one_error_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "message", "detail"]
    assert set(error["properties"]) == {"code", "message", "detail"}


def test_every_api_operation_documents_401_403_and_429_with_the_error_shape(schema):
    for path, method, operation in operations(schema):
        for status in ("401", "403", "429"):
            assert json_schema(operation["responses"][status]) == ERROR_REF, (method, path, status)
        assert "Retry-After" in operation["responses"]["429"]["headers"]  # too many failed authentications


def test_every_mutation_documents_maintenance_mode_with_retry_after(schema):
    mutations = [(path, method, operation) for path, method, operation in operations(schema) if method != "get"]
    assert len(mutations) > 15
    for path, method, operation in mutations:
        unavailable = operation["responses"]["503"]
        assert "Retry-After" in unavailable["headers"], (method, path)
    assert "503" not in schema["paths"]["/api/v1/volumes/"]["get"]["responses"]


def test_bodies_and_query_parameters_document_400_and_ids_404(schema):
    volume = schema["paths"]["/api/v1/volumes/{id}/"]
    assert {"400", "404", "413", "415"} <= set(volume["patch"]["responses"])
    assert "400" not in volume["get"]["responses"] and "404" in volume["get"]["responses"]
    volumes = schema["paths"]["/api/v1/volumes/"]
    assert "400" in volumes["get"]["responses"] and "404" in volumes["get"]["responses"]  # ?page= past the end
    upload = schema["paths"]["/api/v1/volumes/{id}/files/{file_path}"]["put"]["responses"]
    assert {"411", "413", "507"} <= set(upload) and "415" not in upload  # any media type is a file's bytes


def test_lists_of_a_volume_are_paginated_envelopes(schema):
    for path in ("/api/v1/volumes/{id}/files/", "/api/v1/volumes/{id}/backups/"):
        body = json_schema(schema["paths"][path]["get"]["responses"]["200"])
        component = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
        assert set(component["properties"]) == {"count", "next", "previous", "results"}, path
        parameters = {parameter["name"] for parameter in schema["paths"][path]["get"]["parameters"]}
        assert {"page", "page_size"} <= parameters, path


def test_a_snapshot_listing_and_the_trigger_answers_have_their_own_shapes(schema):
    listing = json_schema(schema["paths"]["/api/v1/backups/{id}/files/"]["get"]["responses"]["200"])
    assert listing["$ref"].endswith("/SnapshotListing")
    entry = schema["components"]["schemas"]["SnapshotEntry"]["properties"]
    assert entry["mode"]["type"] == "integer" and "mtime_ns" in entry
    trigger = json_schema(schema["paths"]["/api/v1/backups/"]["post"]["responses"]["202"])
    assert trigger["$ref"].endswith("/BackupTriggerResult")
    one_of = schema["components"]["schemas"]["BackupTriggerResult"]["oneOf"]
    assert {item["$ref"].rsplit("/", 1)[-1] for item in one_of} == {"Backup", "BackupsTriggered"}


def test_either_token_header_is_enough(schema):
    security = schema["paths"]["/api/v1/volumes/"]["get"]["security"]
    assert {"ApiTokenHeader": []} in security and {"BearerToken": []} in security


class FakeGenerator:
    def __init__(self, view_class):
        callback = type("Callback", (), {"cls": view_class})
        self.endpoints = [("/api/v1/things/{pk}/", "", "GET", callback)]


def test_a_throttled_view_documents_429_even_without_a_token_and_a_declared_response_is_kept():
    class ThrottledView:
        throttle_classes = [AnonRateThrottle]

    declared = {"description": "declared by the view"}
    result = {"paths": {"/api/v1/things/{id}/": {"get": {
        "security": [{}], "responses": {"200": {}, "404": declared}}}}}
    responses = add_error_responses(result, FakeGenerator(ThrottledView), None, True)["paths"][
        "/api/v1/things/{id}/"]["get"]["responses"]
    assert "Retry-After" in responses["429"]["headers"]
    assert responses["404"] is declared
    assert "429" not in add_error_responses(
        {"paths": {"/api/v1/things/{id}/": {"get": {"responses": {}}}}}, FakeGenerator(object), None, True,
    )["paths"]["/api/v1/things/{id}/"]["get"]["responses"]


def test_the_document_is_valid_openapi_and_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3")


def test_an_error_declared_with_only_a_description_gets_the_error_body():
    result = {"paths": {"/api/v1/things/": {"post": {"responses": {
        "201": {"description": "created"}, "409": {"description": "the name is taken"}}}}}}
    responses = add_error_responses(result, FakeGenerator(object), None, True)["paths"]["/api/v1/things/"][
        "post"]["responses"]
    assert responses["409"] == {"description": "the name is taken",
                                "content": {"application/json": {"schema": ERROR_REF}}}
    assert "content" not in responses["201"]
