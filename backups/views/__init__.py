"""HTTP views of the backups app, one module per resource: `backups`, `jobs`, `triggers`
(the trigger endpoints that are not under /backups), the scheduler's `policies`, the
`replication_targets` and the repository's keys (`repository_keys`)."""

from __future__ import annotations

from django.http import QueryDict


IDEMPOTENCY_HEADER = "Idempotency-Key"


def request_body(request):
    """The parsed body (a malformed JSON body raises ParseError → 400 `malformed_request`);
    an HTML form from the browsable API becomes a plain dict without its CSRF field."""
    data = request.data
    if isinstance(data, QueryDict):
        data = {key: value for key, value in data.dict().items() if key != "csrfmiddlewaretoken"}
    return data


def idempotency_key(request) -> str | None:
    return request.headers.get(IDEMPOTENCY_HEADER)
