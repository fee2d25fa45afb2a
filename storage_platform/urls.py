"""Top-level routes. The API lives under /api/v1/; /health, /ready and /metrics need no token."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("volumes.urls")),
    path("api/v1/", include("backups.urls")),
    path("api/v1/", include("accounts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script as a same-origin file (no inline script), so the
    # page works under the Content-Security-Policy of storage_platform/security_headers.py.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("storage_platform.system_urls")),
    path("", include("monitoring.urls")),
]

handler400 = "storage_platform.errors.handler400"
handler403 = "storage_platform.errors.handler403"
handler404 = "storage_platform.errors.handler404"
handler500 = "storage_platform.errors.handler500"
