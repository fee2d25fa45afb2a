"""The site's front page (`/`) and the API documentation pages.

`/` is where "View site" in the admin leads and what a browser opened at the bare address
shows: the ways in (admin, API docs, command-line client) and the service endpoints. A
client that prefers JSON gets the same links as JSON.

Swagger UI and ReDoc come from the pinned drf-spectacular-sidecar package (settings
`SWAGGER_UI_DIST` / `REDOC_DIST` = "SIDECAR"), and the templates here load nothing from
another origin (no CDN, no web fonts) and run no inline script, so the pages work offline
and under a same-origin Content-Security-Policy.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from storage_platform.security_headers import REDOC_POLICY

LINKS = [
    ("admin", "/admin/", "Operator console: overview, volumes, backups, jobs, policies, tokens, audit log"),
    ("api_docs", "/api/docs/", "API reference (Swagger UI): try every call with a token"),
    ("api_redoc", "/api/redoc/", "API reference (ReDoc)"),
    ("schema", "/api/schema/", "OpenAPI 3 schema"),
    ("api", "/api/v1/volumes", "REST API v1 (X-API-TOKEN or Authorization: Bearer)"),
    ("health", "/health", "Liveness"),
    ("ready", "/ready", "Readiness: database, broker, storage"),
    ("metrics", "/metrics", "Prometheus metrics"),
]


@require_safe
def landing(request):
    if request.get_preferred_type(["text/html", "application/json"]) == "application/json":
        return JsonResponse({"links": {name: url for name, url, _ in LINKS}})
    return render(request, "console/landing.html", {"links": LINKS})


class SwaggerView(SpectacularSwaggerSplitView):
    template_name = "console/swagger_ui.html"


class RedocView(SpectacularRedocView):
    template_name = "console/redoc.html"

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = REDOC_POLICY
        return response
