"""/health, /ready, /version (no token)."""

urlpatterns = []
