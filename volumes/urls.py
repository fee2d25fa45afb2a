"""URL routes of the volumes app (mounted under /api/v1/ except monitoring)."""

urlpatterns = []
