"""URL routes of the volumes app (mounted under /api/v1/). A trailing slash is optional."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from volumes.views.files import VolumeDirectoryView, VolumeFileView
from volumes.views.volumes import VolumeViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only takes a bool
router.register("volumes", VolumeViewSet, basename="volume")

urlpatterns = [
    re_path(r"^volumes/(?P<id>[^/]+)/files/?$", VolumeDirectoryView.as_view(), name="volume-files"),
    # [\s\S] rather than '.': a path with a newline must reach the view (and be refused
    # there as invalid_path), not fall through to a bare 404.
    re_path(r"^volumes/(?P<id>[^/]+)/files/(?P<file_path>[\s\S]+)$", VolumeFileView.as_view(), name="volume-file"),
    *router.urls,
]
