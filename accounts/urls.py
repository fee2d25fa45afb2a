"""URL routes of the accounts app (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from accounts.views import AuditEventViewSet, TokenViewSet

# "/?": both /api/v1/tokens and /api/v1/tokens/ work (curl users and DRF's habit).
router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only knows "/" or ""
router.register("tokens", TokenViewSet, basename="token")
router.register("audit", AuditEventViewSet, basename="audit")

urlpatterns = router.urls
