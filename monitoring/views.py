"""`/metrics`: django-prometheus's HTTP/DB metrics followed by the platform's catalog metrics.

When `settings.METRICS_TOKEN` is set (or `METRICS_TOKEN_FILE`), the request must carry
`Authorization: Bearer <token>` (Prometheus: `authorization: {credentials_file: ...}`);
otherwise it is open, like /health. The token is compared in constant time and never logged
or echoed; a wrong one counts as a failed authentication of the client (accounts.throttle),
so guessing it is throttled like guessing an API token.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import REGISTRY, generate_latest

from accounts.throttle import record_failure, throttled_response
from monitoring.cached import catalog_text
from monitoring.collectors import LIVE_REGISTRY
from monitoring.exposition import CONTENT_TYPE, render

from storage_platform.errors import error_response


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        response = error_response("method_not_allowed", f"Method {request.method} is not allowed on /metrics.", 405)
        response["Allow"] = "GET, HEAD"
        return response
    expected = getattr(settings, "METRICS_TOKEN", None)
    if expected:
        presented = _bearer_token(request)
        if presented is None or not hmac.compare_digest(presented.encode(), expected.encode()):
            wait = record_failure(request) if presented is not None else None
            if wait is not None:
                return throttled_response(wait)
            response = error_response(
                "not_authenticated", "This endpoint needs the metrics bearer token (Authorization: Bearer).", 401
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # django-prometheus aggregates the per-process files of a multiprocess deployment.
        response = ExportToDjangoView(request)
        body = response.content
    else:
        body = generate_latest(REGISTRY)
    body += (catalog_text() + render(LIVE_REGISTRY.collect())).encode()
    return HttpResponse(body, content_type=CONTENT_TYPE)
