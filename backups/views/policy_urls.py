"""Routes of the policy resource; included from backups/urls.py (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from backups.views.policies import PolicyViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # both /api/v1/policies and /api/v1/policies/ (as accounts/urls.py)
router.register("policies", PolicyViewSet, basename="policy")

urlpatterns = router.urls
