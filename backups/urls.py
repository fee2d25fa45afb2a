"""URL routes of the backups app (mounted under /api/v1/ except monitoring).

Every route answers with and without a trailing slash.
"""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from backups.views.backups import BackupViewSet, VolumeBackupsView
from backups.views.jobs import JobViewSet
from backups.views.replication_targets import ReplicationTargetsView
from backups.views.repository_keys import RepositoryKeyViewSet
from backups.views.triggers import BackupTriggerView, VerifyView

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("backups", BackupViewSet, basename="backup")
router.register("jobs", JobViewSet, basename="job")
router.register("repository-keys", RepositoryKeyViewSet, basename="repository-key")

urlpatterns = [
    re_path(r"^volumes/(?P<id>[^/]+)/backups/?$", VolumeBackupsView.as_view(), name="volume-backups"),
    re_path(r"^backup/?$", BackupTriggerView.as_view(), name="backup-trigger"),
    re_path(r"^verify/?$", VerifyView.as_view(), name="verify"),
    re_path(r"^replication-targets/?$", ReplicationTargetsView.as_view(), name="replication-targets"),
    *router.urls,
]

from backups.views.policy_urls import urlpatterns as policy_urlpatterns  # noqa: E402 - scheduling

urlpatterns += policy_urlpatterns
