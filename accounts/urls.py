"""URL routes of the accounts app (mounted under /api/v1/ except monitoring)."""

urlpatterns = []
