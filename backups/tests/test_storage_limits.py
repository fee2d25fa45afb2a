"""`engine_backend()` applies BACKUP_UPLOAD_LIMIT_KIB / BACKUP_DOWNLOAD_LIMIT_KIB."""

from __future__ import annotations

import pytest

from backups import storage as storage_adapter
from backups.engine.backends import RateLimitedBackend, RetryingBackend


@pytest.fixture
def local_storage(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "repository")}}}
    return settings


def test_the_limits_wrap_the_backend_inside_the_retries(local_storage):
    local_storage.BACKUP_UPLOAD_LIMIT_KIB = 2048
    local_storage.BACKUP_DOWNLOAD_LIMIT_KIB = 0
    backend = storage_adapter.engine_backend()
    assert isinstance(backend, RetryingBackend) and isinstance(backend.inner, RateLimitedBackend)
    assert backend.inner.upload_bytes_per_second == 2048 * 1024
    assert backend.inner.download_bytes_per_second is None


def test_zero_means_no_limit(local_storage):
    local_storage.BACKUP_UPLOAD_LIMIT_KIB = local_storage.BACKUP_DOWNLOAD_LIMIT_KIB = 0
    assert not isinstance(storage_adapter.engine_backend().inner, RateLimitedBackend)
