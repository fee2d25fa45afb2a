"""One error hierarchy and one JSON error shape for the whole API.

Every error a client can see is rendered as::

    {"code": "volume_not_found", "message": "Volume 'db-1' does not exist.", "detail": {...}}

`code` is stable (scripts and the Ansible collection match on it), `message` is one sentence
for a human, `detail` carries structured context (field errors, the conflicting job, limits).

Raise a `PlatformError` subclass from views and services. Engine errors
(`backups.engine.errors.EngineError`) carry a `code` but no HTTP status (the engine knows
nothing of HTTP): `ENGINE_ERROR_STATUS` below maps their codes to statuses; DRF's own exceptions (validation, authentication, throttling, parse errors) are mapped
here too, so no view needs its own error formatting and no traceback ever reaches a client.
"""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class PlatformError(Exception):
    """Base of every error the platform reports to a client.

    Subclasses set `http_status` and `code`; the message is the first argument or the class
    docstring. `transient` tells job runners whether a retry may succeed.
    """

    http_status = status.HTTP_400_BAD_REQUEST
    code = "bad_request"
    transient = False

    def __init__(self, message: str | None = None, *, detail: dict | None = None, code: str | None = None):
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        self.detail = detail or {}
        if code:
            self.code = code
        super().__init__(self.message)


class BadRequest(PlatformError):
    """The request is not valid."""


class NotFound(PlatformError):
    """The resource does not exist."""

    http_status = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Conflict(PlatformError):
    """The request conflicts with the current state of the resource."""

    http_status = status.HTTP_409_CONFLICT
    code = "conflict"


class PayloadTooLarge(PlatformError):
    """The request body is larger than allowed."""

    http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class InsufficientStorage(PlatformError):
    """The volume has no room for this data."""

    http_status = 507
    code = "insufficient_storage"


class ServiceUnavailable(PlatformError):
    """The service is temporarily unavailable."""

    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "service_unavailable"
    transient = True

    def __init__(self, message: str | None = None, *, retry_after: int | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def error_body(code: str, message: str, detail: dict | list | None = None) -> dict:
    return {"code": code, "message": message, "detail": detail if detail is not None else {}}


def error_response(code: str, message: str, http_status: int, detail=None) -> JsonResponse:
    """A plain Django JSON error, for places outside DRF views (middleware, 404/500 handlers)."""
    return JsonResponse(error_body(code, message, detail), status=http_status)


def suspicious_request_error(exc: SuspiciousOperation) -> PlatformError:
    """The client error for a request Django refused to read (hostile or oversized body).

    Django raises these while parsing a body or a query string, before any view logic; they
    are the client's fault, so they are a 413 or a 400, never a 500.
    """
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return PayloadTooLarge(f"The request body is larger than {limit} bytes.",
                               detail={"limit_bytes": limit})
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return BadRequest(f"The request has more than {limit} fields.", code="too_many_fields",
                          detail={"limit": limit})
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return BadRequest(f"The request has more than {limit} files.", code="too_many_files",
                          detail={"limit": limit})
    return BadRequest()


def platform_error_response(error: PlatformError) -> JsonResponse:
    """A `PlatformError` as a plain Django response (middleware, Django's error handlers)."""
    return error_response(error.code, error.message, error.http_status, error.detail)


# DRF exception class -> (stable code, message used when DRF's own text is not helpful)
_DRF_CODES = {
    drf_exceptions.ParseError: ("malformed_request", None),
    drf_exceptions.NotAuthenticated: ("not_authenticated", "An API token is required (X-API-TOKEN or Authorization: Bearer)."),
    drf_exceptions.AuthenticationFailed: ("authentication_failed", None),
    drf_exceptions.PermissionDenied: ("permission_denied", None),
    drf_exceptions.NotFound: ("not_found", None),
    drf_exceptions.MethodNotAllowed: ("method_not_allowed", None),
    drf_exceptions.NotAcceptable: ("not_acceptable", None),
    drf_exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    drf_exceptions.Throttled: ("throttled", None),
}


# Engine error `code` -> HTTP status. An error class whose code is not listed takes the
# status of the nearest base class that is (ObjectCorrupt -> backend_error -> 502); an
# unlisted hierarchy is a 500.
ENGINE_ERROR_STATUS = {
    "engine_error": 500,
    "repository_not_found": 404,
    "repository_exists": 409,
    # The platform's own secret does not open its repository: a server misconfiguration, like
    # a missing key, never the caller's lack of permission (a 403 would send them to fix
    # their token).
    "wrong_key": 500,
    "key_missing": 500,
    "key_not_found": 404,
    "last_key": 409,
    "key_in_use": 409,
    "orphan_key": 409,
    "format_error": 500,
    "integrity_error": 500,
    "snapshot_not_found": 404,
    "path_not_found": 404,
    "unsafe_path": 400,
    "source_error": 400,
    "target_error": 400,
    "repository_locked": 409,
    "cancelled": 409,
    "backend_error": 502,
    "object_not_found": 404,
    "storage_unavailable": 503,
    "invalid_retention": 400,
    "unsupported_storage": 500,
    "invalid_object_lock": 400,
    "object_lock_unsupported": 400,
    "object_locked": 409,
}


def engine_error_status(error) -> int:
    """The HTTP status of an engine error (see `ENGINE_ERROR_STATUS`)."""
    for klass in type(error).__mro__:
        status_code = ENGINE_ERROR_STATUS.get(vars(klass).get("code"))
        if status_code is not None:
            return status_code
    return 500


def _engine_error_class():
    # Imported lazily: the engine is a plain library and must stay importable without Django,
    # but Django may render its errors.
    from backups.engine.errors import EngineError

    return EngineError


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: render any exception as the one JSON error shape."""
    if isinstance(exc, PlatformError):
        response = Response(error_body(exc.code, exc.message, exc.detail), status=exc.http_status)
        if isinstance(exc, ServiceUnavailable) and exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response

    engine_error = _engine_error_class()
    if isinstance(exc, engine_error):
        return Response(error_body(exc.code, str(exc), getattr(exc, "detail", {})),
                        status=engine_error_status(exc))

    if isinstance(exc, SuspiciousOperation):
        error = suspicious_request_error(exc)
        return Response(error_body(error.code, error.message, error.detail), status=error.http_status)

    if isinstance(exc, Http404):
        return Response(error_body("not_found", "The resource does not exist."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("permission_denied", "You do not have permission to do this."), status=403)

    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(
            error_body("validation_error", _first_validation_message(exc.detail), exc.detail),
            status=status.HTTP_400_BAD_REQUEST,
        )

    if isinstance(exc, drf_exceptions.APIException):
        code, message = "error", None
        for drf_class, (drf_code, drf_message) in _DRF_CODES.items():
            if isinstance(exc, drf_class):
                code, message = drf_code, drf_message
                break
        code = getattr(exc, "platform_code", code)  # e.g. token_expired (accounts.authentication)
        wait = getattr(exc, "wait", None)
        detail = {"retry_after": math.ceil(wait)} if wait else None
        response = Response(error_body(code, message or str(exc.detail), detail), status=exc.status_code)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        if wait:
            response["Retry-After"] = str(math.ceil(wait))
        return response

    # Anything else is a bug in the platform: log it (the request body is never logged) and
    # answer with the same shape, no traceback.
    view = context.get("view")
    logger.exception("unhandled error in %s", type(view).__name__ if view else "view")
    return Response(error_body("internal_error", "An internal error occurred; it has been logged."), status=500)


def _first_validation_message(detail) -> str:
    """A one-sentence summary of DRF validation errors: the first field and its first message."""
    if isinstance(detail, dict):
        for field, messages in detail.items():
            inner = _first_validation_message(messages)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_validation_message(detail[0])
    return str(detail) if detail else "Invalid input."


def handler404(request, exception=None):
    return error_response("not_found", "The resource does not exist.", 404)


def handler500(request):
    return error_response("internal_error", "An internal error occurred; it has been logged.", 500)


def handler400(request, exception=None):
    # Django calls this for SuspiciousOperation raised outside DRF views (an oversized admin
    # form is caught by the CSRF middleware reading request.POST).
    if isinstance(exception, SuspiciousOperation):
        return platform_error_response(suspicious_request_error(exception))
    return error_response("bad_request", "The request is not valid.", 400)


def handler403(request, exception=None):
    return error_response("permission_denied", "You do not have permission to do this.", 403)
