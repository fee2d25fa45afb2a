"""The error responses of the OpenAPI document (`/api/schema/`), written in one place.

Every error the API gives has one shape, `{code, message, detail}` (`storage_platform.errors`),
the `Error` component. Statuses that follow from what an operation *is* are added to every
operation by `add_error_responses`, a drf-spectacular postprocessing hook, so no view lists
them:

| status | documented on |
| --- | --- |
| 400 | operations that take a body, a query parameter or a header |
| 401, 403, 429 | operations that need a token (all of `/api/v1/`); 429 after too many failed |
| | authentications from one client (`accounts/throttle.py`) |
| 404 | operations with path parameters, and paginated lists (`?page=` past the end) |
| 413 | operations that take a body (too large) |
| 415 | operations that take a body of a fixed set of media types (JSON, form, multipart) |
| 429 | also operations whose view has DRF throttles |
| 503 | unsafe methods under `/api/` (maintenance mode, with `Retry-After`) |

Statuses that depend on what an operation *does* (409 conflicts, 411, 502 and 503 from the
backup repository's storage, 507) are declared on the view with `error_responses(409, ...)`.
The hook never replaces a response a view declared; an error a view declares with only a
description (`OpenApiResponse(description=...)`) gets the `Error` body.
"""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

ERROR_COMPONENT = "Error"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
ERROR_SCHEMA = {
    "type": "object",
    "description": "The one error shape of the API.",
    "properties": {
        "code": {"type": "string", "description": "Stable machine-readable code, e.g. `volume_not_found`."},
        "message": {"type": "string", "description": "One sentence for a human."},
        "detail": {"description": "Structured context: field errors, the conflicting job, limits."},
    },
    "required": ["code", "message", "detail"],
}
RETRY_AFTER_HEADER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                      "schema": {"type": "integer"}}}

ERROR_DESCRIPTIONS = {
    400: "The request is not valid (`validation_error` names the field in `detail`, `malformed_request`, ...).",
    401: "No API token, or one that is unknown, expired or revoked.",
    403: "The token's role does not allow this.",
    404: "The resource does not exist.",
    409: "The request conflicts with the current state of the resource.",
    411: "The upload needs a Content-Length.",
    413: "The request body is too large.",
    415: "The request's Content-Type is not accepted.",
    429: "Too many failed authentications from this client, or too many requests; retry after `Retry-After` seconds.",
    502: "The backup repository's storage answered with an error.",
    503: "Maintenance mode (mutations answer 503 with `Retry-After`) or a service the operation needs is unavailable.",
    507: "The volume's quota is exhausted.",
}
UNSAFE_METHODS = ("post", "put", "patch", "delete")
PARAMETER = re.compile(r"\{[^}]+\}")


def error_responses(*statuses: int) -> dict[tuple[int, str], OpenApiResponse]:
    """`responses={202: JobSerializer, **error_responses(409)}` in a view's `extend_schema`."""
    return {(code, "application/json"): OpenApiResponse(ERROR_REF, description=ERROR_DESCRIPTIONS[code])
            for code in statuses}


def paginated(serializer_class: type[serializers.Serializer], name: str) -> type[serializers.Serializer]:
    """The `{count, next, previous, results}` envelope of `storage_platform.pagination`, as a
    serializer, for responses that drf-spectacular cannot see are paginated (a directory
    listing that shares its operation with a file download)."""

    class Envelope(serializers.Serializer):
        count = serializers.IntegerField()
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = serializer_class(many=True)

    Envelope.__name__ = Envelope.__qualname__ = name
    return Envelope


def _views_by_operation(generator) -> dict[tuple[str, str], type]:
    views = {}
    for path, _regex, method, callback in generator.endpoints or ():
        views[(PARAMETER.sub("{}", path), method.lower())] = getattr(callback, "cls", None)
    return views


def _throttled(view_class) -> bool:
    return bool(view_class is not None and getattr(view_class, "throttle_classes", None))


def _reads_any_media_type(view_class) -> bool:
    """True for views whose parser takes any body (the file data plane's raw uploads)."""
    return any(parser.media_type == "*/*" for parser in getattr(view_class, "parser_classes", ()))


def _statuses_for(path: str, method: str, operation: dict, view_class) -> list[int]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses = []
    if has_body or any(parameter.get("in") in ("query", "header") for parameter in parameters):
        statuses.append(400)
    security = operation.get("security", [])
    authenticated = bool(security) and {} not in security  # `{}`: anonymous access allowed
    if authenticated:
        statuses += [401, 403]
    if "{" in path or any(parameter.get("name") == "page" for parameter in parameters):
        statuses.append(404)
    if has_body:
        statuses.append(413)
        if not _reads_any_media_type(view_class):
            statuses.append(415)
    if authenticated or _throttled(view_class):
        statuses.append(429)
    if method in UNSAFE_METHODS and path.startswith("/api/"):
        statuses.append(503)
    return statuses


def add_error_responses(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry: see the module docstring."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    views = _views_by_operation(generator)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            view_class = views.get((PARAMETER.sub("{}", path), method))
            responses = operation.setdefault("responses", {})
            for status in _statuses_for(path, method, operation, view_class):
                if str(status) in responses:
                    continue
                response = {"description": ERROR_DESCRIPTIONS[status],
                            "content": {"application/json": {"schema": ERROR_REF}}}
                if status in (429, 503):
                    response["headers"] = RETRY_AFTER_HEADER
                responses[str(status)] = response
            for status, response in responses.items():
                if status[0] in "45" and "content" not in response:
                    # A view may declare an error with only a description of its own.
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
                if status in ("429", "503") and "headers" not in response:
                    response["headers"] = RETRY_AFTER_HEADER
    return result
