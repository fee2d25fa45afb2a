"""Top-level routes. The API lives under /api/v1/; /health, /ready and /metrics need no token;
`/` is the front page (links to the admin, the API docs and the endpoints)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from console import views as console_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("volumes.urls")),
    path("api/v1/", include("backups.urls")),
    path("api/v1/", include("accounts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", console_views.SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", console_views.RedocView.as_view(url_name="schema"), name="redoc"),
    path("", console_views.landing, name="landing"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("storage_platform.system_urls")),
    path("", include("monitoring.urls")),
]

handler400 = "storage_platform.errors.handler400"
handler403 = "storage_platform.errors.handler403"
handler404 = "storage_platform.errors.handler404"
handler500 = "storage_platform.errors.handler500"
