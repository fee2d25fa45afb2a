"""URL routes of the backups app (mounted under /api/v1/ except monitoring)."""

urlpatterns = []
