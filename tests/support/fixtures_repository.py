"""A backup repository of the test's own.

* `own_repository`: a fresh local repository directory for this test (returned), used by the
  in-process code and by the Celery workers the test starts afterwards (they take
  `settings.REPOSITORY_DIR`), so snapshots and damage of one test never reach another.
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
