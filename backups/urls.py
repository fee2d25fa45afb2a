"""URL routes of the backups app (mounted under /api/v1/ except monitoring)."""

urlpatterns = []

from backups.views.policy_urls import urlpatterns as policy_urlpatterns  # noqa: E402 - scheduling

urlpatterns += policy_urlpatterns
