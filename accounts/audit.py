"""Audit log of every mutating API request, and a request id on every response.

`AuditMiddleware` writes one `AuditEvent` per POST/PUT/PATCH/DELETE under `/api/`, after the
response is known, whatever the outcome (401, 403, 4xx, 5xx included): who (token name, user
name or `anonymous`), what (method, route name and view-set action), target (type and id from
the URL, or the id of a created resource), result (status code, success/failure), remote
address (behind `TRUSTED_PROXY_COUNT` proxies, the client's), request id, and the calling
token's scope (`accounts.scopes`) when it has one. It never records
a token, a header or a body.

Writing the event must not turn a successful request into a failure: if the database refuses
it, the failure is logged (without request data) and the response is returned unchanged.
"""

from __future__ import annotations

import logging
import re
import uuid

from django.db import transaction
from django.utils import timezone

from accounts.throttle import client_ip

logger = logging.getLogger(__name__)

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED_PREFIX = "/api/"
REQUEST_ID_HEADER = "HTTP_X_REQUEST_ID"
# A client-supplied request id is kept only when it is short and harmless to log.
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# URL keyword arguments that name the target, most specific first.
_TARGET_KWARGS = ("pk", "id", "volume_pk", "volume_id", "backup_pk", "backup_id", "job_pk", "job_id", "name")
_API_PATH_PATTERN = re.compile(r"^/api/v\d+/([^/]+)")


def request_id_for(request) -> str:
    supplied = request.META.get(REQUEST_ID_HEADER, "")
    return supplied if _REQUEST_ID_PATTERN.match(supplied) else uuid.uuid4().hex


def _actor(request) -> tuple[str, str, str]:
    """(actor, actor_type, role) of the request after the view ran."""
    token = getattr(request, "auth", None)
    user = getattr(request, "user", None)
    if token is not None and hasattr(token, "role"):
        return token.name, "token", token.role
    if user is not None and getattr(user, "is_authenticated", False):
        role = "admin" if user.is_superuser else ("read" if user.is_staff else "")
        return user.get_username(), "user", role
    refused = getattr(request, "audit_token_name", None)
    if refused:
        # A known but expired/revoked token: worth naming, the request was still refused.
        return refused, "token", ""
    return "anonymous", "anonymous", ""


def _action(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unresolved"
    name = match.view_name or match.url_name or getattr(match.func, "__name__", "view")
    actions = getattr(match.func, "actions", None) or {}
    action = actions.get(request.method.lower())
    return f"{name}:{action}" if action and not name.endswith(action) else name


def _target(request, response) -> tuple[str, str]:
    path_match = _API_PATH_PATTERN.match(request.path)
    target_type = path_match.group(1) if path_match else ""
    match = getattr(request, "resolver_match", None)
    kwargs = dict(match.kwargs) if match is not None else {}
    kwargs.pop("format", None)
    for key in _TARGET_KWARGS:
        if key in kwargs:
            return target_type, str(kwargs[key])[:255]
    if kwargs:
        return target_type, str(next(iter(kwargs.values())))[:255]
    # A create: the new resource's id, from the answer (an id, never body content).
    data = getattr(response, "data", None)
    if isinstance(data, dict) and response.status_code < 300 and "id" in data:
        return target_type, str(data["id"])[:255]
    return target_type, ""


def _remote_addr(request) -> str | None:
    # The same client identity as failed-authentication throttling: REMOTE_ADDR, or the
    # address seen by the outermost of TRUSTED_PROXY_COUNT proxies.
    return client_ip(request)


def _text(value: str, limit: int) -> str:
    # PostgreSQL text refuses NUL; a path or id with %00 must still be audited, visibly.
    return value.replace("\x00", "\\x00")[:limit]


def record(request, response) -> None:
    from accounts.models import AuditEvent, AuditResult

    from accounts.scopes import scope_of

    actor, actor_type, role = _actor(request)
    target_type, target_id = _target(request, response)
    # A savepoint: if the insert fails, an enclosing transaction (a test's, ATOMIC_REQUESTS)
    # stays usable instead of being poisoned for the rest of the request.
    with transaction.atomic():
        AuditEvent.objects.create(
            created_at=timezone.now(),
            actor=_text(actor, 150), actor_type=actor_type, role=role,
            token_scope=_text(scope_of(request).summary(), 700),
            method=_text(request.method, 10), path=_text(request.path, 512),
            action=_text(_action(request), 150),
            target_type=_text(target_type, 64), target_id=_text(target_id, 255),
            status_code=response.status_code,
            result=AuditResult.SUCCESS if response.status_code < 400 else AuditResult.FAILURE,
            remote_addr=_remote_addr(request), request_id=request.audit_request_id,
        )


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.audit_request_id = request_id_for(request)
        response = self.get_response(request)
        response["X-Request-ID"] = request.audit_request_id
        if request.method in MUTATING_METHODS and request.path.startswith(AUDITED_PREFIX):
            try:
                record(request, response)
            except Exception:  # noqa: BLE001 - auditing must not break the answered request
                logger.exception("audit event not written for %s %s (request %s)",
                                 request.method, request.path, request.audit_request_id)
        return response


def record_admin_action(request, *, action: str, target_type: str, target_id: str = "", status_code: int = 200) -> None:
    """Audit one thing an operator did in the Django admin (the middleware sees only `/api/`).

    The actor is the staff user; `action` is `admin:<name>` (e.g. `admin:back_up_now`),
    `target_type` uses the API's resource names (`volumes`, `backups`, `jobs`, `policies`),
    and `status_code` is what the API would have answered (202 queued, 409 conflict ...)."""
    from accounts.models import AuditEvent, AuditResult

    actor, actor_type, role = _actor(request)
    with transaction.atomic():
        AuditEvent.objects.create(
            created_at=timezone.now(), actor=_text(actor, 150), actor_type=actor_type, role=role,
            method=_text(request.method, 10), path=_text(request.path, 512), action=_text(f"admin:{action}", 150),
            target_type=_text(target_type, 64), target_id=_text(str(target_id), 255), status_code=status_code,
            result=AuditResult.SUCCESS if status_code < 400 else AuditResult.FAILURE,
            remote_addr=_remote_addr(request),
            request_id=getattr(request, "audit_request_id", None) or request_id_for(request),
        )
