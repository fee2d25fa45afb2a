"""Response headers that browsers and caches act on: Content-Security-Policy and no-store.

* **Pages** (the front page, the Django admin, the Swagger UI at /api/docs/ and ReDoc at
  /api/redoc/, DRF's login and browsable API pages) get `PAGE_POLICY`: scripts, styles, images, fonts and XHR from this origin only,
  no plugins, no framing, forms post here only. The admin and DRF need no inline script;
  the Swagger UI's init script is served by the split view as a same-origin file, its
  assets by drf-spectacular-sidecar. Inline *styles* stay allowed: DRF's templates and the
  Swagger UI template use `style` attributes and a `<style>` block, and a style cannot run code.
* **Everything else** (JSON, file downloads, metrics) gets `OTHER_POLICY`: nothing may load
  and the document is sandboxed, so a file a hostile uploader put in a volume cannot run
  script in our origin even if a browser renders it instead of downloading it.
* **API answers** (`/api/v1/...`) get `Cache-Control: no-store`: they are per-token data
  (and sometimes a secret, e.g. a created token), which no shared or browser cache may keep.

A view that sets its own Content-Security-Policy keeps it.
"""

from __future__ import annotations

from django.utils.cache import patch_cache_control

PAGE_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
PAGE_PREFIXES = ("/admin/", "/api/docs/", "/api/redoc/", "/api-auth/")
#: ReDoc runs its search in a web worker it starts from a blob: URL of its own code.
REDOC_POLICY = PAGE_POLICY + "; worker-src 'self' blob:"
PAGE_PATHS = ("/",)  # the front page
NO_STORE_PREFIX = "/api/v1/"


def is_page(request, response) -> bool:
    if request.path in PAGE_PATHS or request.path.startswith(PAGE_PREFIXES):
        return True
    # DRF's browsable API: an HTML rendering of an API answer (never a file download,
    # which is a FileResponse without a renderer).
    renderer = getattr(response, "accepted_renderer", None)
    return getattr(renderer, "format", None) == "api"


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = PAGE_POLICY if is_page(request, response) else OTHER_POLICY
        if request.path.startswith(NO_STORE_PREFIX):
            patch_cache_control(response, no_store=True)
        return response
