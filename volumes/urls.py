"""URL routes of the volumes app (mounted under /api/v1/). A trailing slash is optional."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from volumes.views.files import VolumeFilesView
from volumes.views.volumes import VolumeViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only takes a bool
router.register("volumes", VolumeViewSet, basename="volume")

files_view = VolumeFilesView.as_view()

urlpatterns = [
    re_path(r"^volumes/(?P<id>[^/]+)/files/?$", files_view, name="volume-files"),
    path("volumes/<str:id>/files/<path:file_path>", files_view, name="volume-file"),
    *router.urls,
]
