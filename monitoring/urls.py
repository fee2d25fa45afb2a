"""URL routes of the monitoring app (mounted under /api/v1/ except monitoring)."""

urlpatterns = []
