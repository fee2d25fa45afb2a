"""A backup repository of the test's own.

* `own_repository`: a fresh local repository directory for this test (returned), used by the
  in-process code and by the Celery workers the test starts afterwards (they take
  `settings.REPOSITORY_DIR`), so snapshots and damage of one test never reach another.
* `own_s3_repository`: the `backups` storage pointed at a fresh bucket of the session's
  moto_server (real S3 over HTTP) through django-storages, as `S3_*` settings do in a
  deployment; returns the `s3_bucket`. In-process code only (workers take the environment).
* `own_s3_lock_repository`: the same on a bucket with S3 Object Lock enabled.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def own_repository(settings, tmp_path):
    """A fresh repository per test: snapshots and damage of one test never reach another."""
    from backups import storage

    location = tmp_path / "repository"
    settings.REPOSITORY_DIR = location
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}}}
    storage.forget_cached_repository()
    yield location
    storage.forget_cached_repository()


@pytest.fixture
def own_s3_repository(settings, s3_bucket):
    yield from _s3_repository(settings, s3_bucket)


@pytest.fixture
def own_s3_lock_repository(settings, s3_lock_bucket):
    """`own_s3_repository` on a bucket with S3 Object Lock enabled."""
    yield from _s3_repository(settings, s3_lock_bucket)


def _s3_repository(settings, s3_bucket):
    from backups import storage

    server = s3_bucket.server
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": s3_bucket.name, "endpoint_url": server.endpoint_url,
                    "region_name": server.region, "access_key": server.access_key_id,
                    "secret_key": server.secret_access_key, "location": "repository",
                    "file_overwrite": True, "default_acl": None, "querystring_auth": False}}}
    settings.REPOSITORY_KEY = "0123456789abcdef" * 4
    storage.forget_cached_repository()
    yield s3_bucket
    storage.forget_cached_repository()
