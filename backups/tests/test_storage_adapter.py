"""backups/storage.py: django-storages configuration -> engine backend and repository."""

from __future__ import annotations

import pytest

from backups import storage as storage_adapter
from backups.engine.backends import LocalBackend
from backups.engine.backends.retry import RetryingBackend
from backups.engine.backends.s3 import S3Backend
from backups.engine.errors import RepositoryNotFound, WrongKey
from backups.engine.repository import Repository

# open_repository asks the catalog before it ever creates a repository.
pytestmark = pytest.mark.django_db


@pytest.fixture
def local_storage(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "repository")}}}
    settings.REPOSITORY_KEY = "a passphrase for the test repository"
    storage_adapter.forget_cached_repository()
    yield tmp_path / "repository"
    storage_adapter.forget_cached_repository()


@pytest.fixture
def s3_storage(own_s3_repository):
    return own_s3_repository


def test_filesystem_storage_becomes_a_local_backend(local_storage):
    backend = storage_adapter.engine_backend()
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, LocalBackend)
    assert backend.inner.root == str(local_storage)


def test_s3_storage_becomes_an_s3_backend_on_the_storages_own_client(s3_storage):
    from django.core.files.storage import storages

    backend = storage_adapter.engine_backend()
    assert isinstance(backend.inner, S3Backend)
    # botocore inside django-storages' client retries too: fewer engine rounds on top
    assert backend.attempts == storage_adapter.DJANGO_STORAGES_CLIENT_ATTEMPTS
    assert backend.inner.bucket == s3_storage.name and backend.inner.prefix == "repository"
    assert backend.inner.client is storages["backups"].connection.meta.client
    backend.put("keys/probe", b"x")
    stored = s3_storage.client.get_object(Bucket=s3_storage.name, Key="repository/keys/probe")
    assert stored["Body"].read() == b"x"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_open_repository_initialises_once_and_reopens(kind, request):
    request.getfixturevalue(f"{kind}_storage")
    first = storage_adapter.open_repository()
    assert first.backend.exists("config")
    repository_id = first.config["id"]
    first.close()
    storage_adapter.forget_cached_repository()  # as a new process would
    second = storage_adapter.open_repository()
    assert second.config["id"] == repository_id
    assert second is not storage_adapter.open_repository()  # fresh object per call
    second.close()


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_open_repository_round_trips_a_backup(kind, request, tmp_path):
    request.getfixturevalue(f"{kind}_storage")
    source = tmp_path / "source"
    source.mkdir()
    (source / "file.txt").write_bytes(b"kept safe")
    repository = storage_adapter.open_repository()
    result = repository.backup(source, source="volume:test")
    target = tmp_path / "target"
    storage_adapter.open_repository().restore(result.snapshot_id, target)
    assert (target / "file.txt").read_bytes() == b"kept safe"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_process_whose_repository_was_replaced_reopens_instead_of_failing(kind, request,
                                                                           tmp_path, settings):
    request.getfixturevalue(f"{kind}_storage")
    cached = storage_adapter.open_repository()
    backend = cached.backend
    # Another process re-creates the repository at the same place with the same secret,
    # as the loser of a concurrent initialisation would see it: a config this process's
    # cached master key does not open.
    for name in list(backend.list("")):
        backend.delete(name)
    replacement = Repository.init(backend, settings.REPOSITORY_KEY)
    source = tmp_path / "source"
    source.mkdir()
    (source / "file.txt").write_bytes(b"after the replacement")
    reopened = storage_adapter.open_repository()
    assert reopened.config["id"] == replacement.config["id"] != cached.config["id"]
    snapshot = reopened.backup(source, source="volume:test").snapshot_id
    assert b"".join(Repository.open(backend, settings.REPOSITORY_KEY)
                    .open_file(snapshot, "/file.txt")) == b"after the replacement"


def test_a_lost_repository_is_not_silently_replaced_by_an_empty_one(local_storage, make_volume):
    from backups.models import Backup, BackupStatus

    volume = make_volume("kept")
    Backup.objects.create(volume=volume, volume_name=volume.name,
                          status=BackupStatus.COMPLETED, snapshot_id="ab" * 32)
    with pytest.raises(RepositoryNotFound, match="catalog has completed backups"):
        storage_adapter.open_repository()
    assert not (local_storage / "config").exists()
    with pytest.raises(RepositoryNotFound):
        storage_adapter.initialise_repository()
    location, created = storage_adapter.initialise_repository(force=True)
    assert created and (local_storage / "config").exists()


def test_init_repository_command_creates_once_then_opens(local_storage):
    from io import StringIO

    from django.core.management import call_command

    first, second = StringIO(), StringIO()
    call_command("init_repository", stdout=first)
    call_command("init_repository", stdout=second)
    assert first.getvalue().startswith("backup repository: initialised a new repository at ")
    assert second.getvalue().startswith("backup repository: opened the existing repository at ")
    assert len(list((local_storage / "keys").iterdir())) == 1


def test_init_repository_command_fails_in_one_line_on_a_wrong_key(local_storage, settings):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    storage_adapter.initialise_repository()
    settings.REPOSITORY_KEY = "not the key the repository was made with"
    with pytest.raises(CommandError, match="^backup repository: "):
        call_command("init_repository")


def test_a_wrong_repository_key_is_a_clear_error(local_storage, settings):
    storage_adapter.open_repository().close()
    settings.REPOSITORY_KEY = "not the key the repository was made with"
    with pytest.raises(WrongKey):
        storage_adapter.open_repository()


#: What the health message says, not how fast: the deadline has its own test below, and a
#: loaded machine can take longer than the probe's own few seconds to build an S3 client.
CONTENT_TIMEOUT = 30


def test_health_of_a_writable_local_repository(local_storage):
    ok, message = storage_adapter.storage_health(timeout=CONTENT_TIMEOUT)
    assert ok and "not initialised yet" in message, message
    storage_adapter.open_repository().close()
    ok, message = storage_adapter.storage_health(timeout=CONTENT_TIMEOUT)
    assert ok and "(initialised)" in message, message


def test_health_of_an_unusable_local_repository(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(blocker / "repository")}}}
    ok, message = storage_adapter.storage_health(timeout=CONTENT_TIMEOUT)
    assert not ok and "not writable" in message, message


def test_health_of_s3(s3_storage):
    ok, message = storage_adapter.storage_health(timeout=CONTENT_TIMEOUT)
    assert ok and s3_storage.name in message, message


def test_a_bucket_whose_default_object_lock_retention_would_lock_the_repositorys_locks_is_not_ready(
        settings, s3_server):
    """/ready says why before any job blocks the repository (docs/storage-backends.md)."""
    client = s3_server.shared_client()
    bucket = s3_server.create_bucket(client=client, object_lock=True)
    client.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 7}}})
    settings.STORAGES = {**settings.STORAGES, "backups": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": bucket, "endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region,
        "access_key": s3_server.access_key_id, "secret_key": s3_server.secret_access_key, "location": "repository"}}}
    storage_adapter.forget_cached_repository()
    ok, message = storage_adapter.storage_health(timeout=CONTENT_TIMEOUT)
    assert not ok and "default Object Lock retention (COMPLIANCE, 7 days)" in message, message
    assert s3_server.secret_access_key not in message


def test_health_of_a_missing_bucket_names_no_secret(s3_storage, settings):
    options = dict(settings.STORAGES["backups"]["OPTIONS"], bucket_name="no-such-bucket")
    settings.STORAGES = {**settings.STORAGES,
                         "backups": {**settings.STORAGES["backups"], "OPTIONS": options}}
    ok, message = storage_adapter.storage_health(timeout=CONTENT_TIMEOUT)
    assert not ok and "does not exist" in message, message
    assert s3_storage.server.secret_access_key not in message


def test_health_answers_quickly_when_s3_is_frozen(settings, private_s3_server):
    import time

    bucket = private_s3_server.create_bucket()
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": bucket, "endpoint_url": private_s3_server.endpoint_url,
                    "region_name": private_s3_server.region,
                    "access_key": private_s3_server.access_key_id,
                    "secret_key": private_s3_server.secret_access_key,
                    "location": "repository", "default_acl": None}}}
    assert storage_adapter.storage_health(timeout=CONTENT_TIMEOUT).ok  # reachable before the pause
    private_s3_server.pause()
    try:
        started = time.monotonic()
        ok, message = storage_adapter.storage_health(timeout=1.0)
        elapsed = time.monotonic() - started
    finally:
        private_s3_server.resume()
    assert not ok and "did not answer" in message
    assert elapsed < 3
