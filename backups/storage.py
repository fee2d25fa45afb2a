"""The Django side of repository storage: django-storages configures, the engine stores.

`settings.STORAGES["backups"]` (built from `S3_*` / `REPOSITORY_DIR` in settings.py) is the one
configuration surface. This module turns that storage into an engine backend:

* `FileSystemStorage`  -> `LocalBackend(storage.location)`
* `S3Storage`          -> `S3Backend(storage.bucket_name, storage.location,
                                     client=storage.connection.meta.client)`

so S3/MinIO endpoint, region and credentials are whatever django-storages was given, and the
engine never reads Django settings itself. Both are wrapped in `RetryingBackend`, and in
`RateLimitedBackend` when `BACKUP_UPLOAD_LIMIT_KIB` / `BACKUP_DOWNLOAD_LIMIT_KIB` are set.

`initialise_repository()` creates the repository at start (`manage.py init_repository`);
`open_existing_repository()` opens it and never creates one (`manage.py rebuild_catalog`);
`open_repository()` returns an opened engine `Repository` (and still initialises a missing
one, race-free, unless the catalog says a repository existed). Unwrapping the repository key costs a key derivation (scrypt for
passphrase-like keys, ~0.1 s and 32 MiB), so the unwrapped key is cached per process; every
call still returns a NEW `Repository` object, because an index cached for long would miss
packs other processes wrote since. Callers `close()` what they get; that is cheap.

The secret comes from `backups.repository_secret.candidate_secrets()`: `REPOSITORY_KEY`, then
the secret the latest key rotation stored. A new repository is always created with
`REPOSITORY_KEY`.

`storage_health()` answers `/ready`: `(ok, message)`, never raising, never naming secrets.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import NamedTuple

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages

from backups.engine.backend import Backend
from backups.engine.backends import LocalBackend, open_backend
from backups.engine.errors import (EngineError, KeyMissing, ObjectNotFound, RepositoryExists,
                                   RepositoryNotFound, WrongKey)

log = logging.getLogger(__name__)

STORAGE_ALIAS = "backups"
#: Engine-level attempts around django-storages' client (which retries by itself).
DJANGO_STORAGES_CLIENT_ATTEMPTS = 4

_cache_lock = threading.Lock()
_opened: dict[tuple, "_Opened"] = {}


class UnsupportedStorage(EngineError):
    """The configured backups storage cannot hold a repository."""

    code = "unsupported_storage"


class StorageHealth(NamedTuple):
    ok: bool
    message: str


class _Opened(NamedTuple):
    """This process's opened repository and where the secret that opened it came from
    (`environment` or `platform`, see backups/repository_secret.py)."""

    repository: object
    secret_source: str


def _backups_storage():
    return storages[STORAGE_ALIAS]


def _is_s3_storage(storage) -> bool:
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # django-storages without boto3: no S3 possible
        return False
    return isinstance(storage, S3Storage)


def engine_backend(*, retry: bool = True) -> Backend:
    """The engine backend for the `backups` storage alias (wrapped in retries by default)."""
    storage = _backups_storage()
    attempts = None
    if isinstance(storage, FileSystemStorage):
        backend: Backend = LocalBackend(storage.location)
    elif _is_s3_storage(storage):
        from backups.engine.backends.s3 import S3Backend

        # django-storages' client keeps botocore's own retries (5 attempts, backoff up to
        # ~15 s), so the engine's wrapper needs fewer rounds on top to ride out the same
        # outage; nesting the full count would multiply the wait to many minutes.
        attempts = DJANGO_STORAGES_CLIENT_ATTEMPTS
        backend = S3Backend(storage.bucket_name, storage.location or "",
                            client=storage.connection.meta.client)
    else:
        raise UnsupportedStorage(
            f"the backups storage {type(storage).__name__} is not supported; use "
            "FileSystemStorage (REPOSITORY_DIR) or S3Storage (S3_* settings)")
    limits = {"upload_limit": _limit_bytes_per_second("BACKUP_UPLOAD_LIMIT_KIB"),
              "download_limit": _limit_bytes_per_second("BACKUP_DOWNLOAD_LIMIT_KIB")}
    if attempts is None:
        return open_backend(backend, retry=retry, **limits)
    return open_backend(backend, retry=retry, attempts=attempts, **limits)


def check_object_lock() -> None:
    """Raise `ObjectLockUnsupported` unless the backups storage can hold locked objects (an S3
    bucket with Object Lock enabled); a local directory never can."""
    backend = engine_backend()
    try:
        backend.check_object_lock()
    finally:
        backend.close()


def _limit_bytes_per_second(setting: str) -> int:
    """A KiB/s setting as bytes per second; 0 (the default) means unlimited."""
    return int(getattr(settings, setting, 0) or 0) * 1024


def _cache_key() -> tuple:
    storage_config = repr(sorted(settings.STORAGES[STORAGE_ALIAS].items()))
    # Only a digest of the key is kept, so the cache never holds the secret as a key.
    key_digest = hashlib.sha256(str(settings.REPOSITORY_KEY).encode()).hexdigest()
    limits = (_limit_bytes_per_second("BACKUP_UPLOAD_LIMIT_KIB"),
              _limit_bytes_per_second("BACKUP_DOWNLOAD_LIMIT_KIB"))
    return storage_config, key_digest, limits, os.getpid()


def _open_with_platform_secret(backend: Backend) -> _Opened:
    """Open with the first of the platform's secrets that opens the repository.

    `RepositoryNotFound` when there is none; `WrongKey` when no secret opens it."""
    from backups import repository_secret
    from backups.engine.repository import Repository

    tried = []
    for candidate in repository_secret.candidate_secrets():
        try:
            repository = Repository.open(backend, candidate.secret)
        except WrongKey:
            tried.append(candidate)
            continue
        if tried:
            log.warning("REPOSITORY_KEY does not open the repository at %s; opened it with the secret "
                        "the platform stored when it rotated to keys/%s. Copy that secret into the "
                        "REPOSITORY_KEY_FILE of every host (manage.py export_repository_key; "
                        "docs/security.md, \"Repository keys\")", backend.location, candidate.key_id)
        return _Opened(repository, candidate.source)
    if not tried:
        raise KeyMissing("no repository secret: set REPOSITORY_KEY or REPOSITORY_KEY_FILE")
    names = " nor ".join("REPOSITORY_KEY" if candidate.source == repository_secret.ENVIRONMENT
                         else "the secret stored at the latest key rotation" for candidate in tried)
    raise WrongKey(f"{'neither ' if len(tried) > 1 else ''}{names} "
                   f"{'opens' if len(tried) > 1 else 'does not open'} the repository at {backend.location}")


def _create_repository(backend: Backend):
    """A new repository, wrapped with REPOSITORY_KEY. A secret stored for an earlier
    repository opens nothing in it, so it is dropped."""
    from backups import repository_secret
    from backups.engine.repository import Repository

    repository = Repository.init(backend, settings.REPOSITORY_KEY)
    repository_secret.forget_stored_secret()
    return repository


def _open_or_init(backend: Backend) -> _Opened:
    from backups import repository_secret

    try:
        return _open_with_platform_secret(backend)
    except RepositoryNotFound:
        pass
    _refuse_to_replace_a_lost_repository(backend)
    try:
        repository = _create_repository(backend)
    except RepositoryExists:
        # another process initialised it first: open what it wrote
        return _open_with_platform_secret(backend)
    log.info("initialised a new backup repository at %s", backend.location)
    return _Opened(repository, repository_secret.ENVIRONMENT)


def _refuse_to_replace_a_lost_repository(backend: Backend) -> None:
    """No repository at the location, but the catalog has completed backups: the storage
    settings point somewhere else, or the repository was deleted. Creating a fresh, empty
    repository there would hide that until someone tries to restore."""
    from backups.models import Backup, BackupStatus

    if Backup.objects.filter(status=BackupStatus.COMPLETED).exclude(snapshot_id="").exists():
        raise RepositoryNotFound(
            f"no repository at {backend.location}, but the catalog has completed backups: "
            "check the backups storage settings; a new repository is not created over a "
            "lost one (manage.py init_repository --force does, after a decision)")


def initialise_repository(*, force: bool = False) -> tuple[str, bool]:
    """Open the configured repository, creating it when there is none; (location, created).

    What the platform runs once at start (`manage.py init_repository`), before any worker
    takes a job, so that no backup ever has to create the repository. Safe to run from
    several hosts at once: one creates it, the others open it.
    """
    backend = engine_backend()
    try:
        _open_with_platform_secret(backend).repository.close()
        return backend.location, False
    except RepositoryNotFound:
        pass
    if not force:
        _refuse_to_replace_a_lost_repository(backend)
    try:
        _create_repository(backend).close()
    except RepositoryExists:
        _open_with_platform_secret(backend).repository.close()
        return backend.location, False
    forget_cached_repository()
    return backend.location, True


def open_existing_repository():
    """The configured repository, opened without the cache and never created:
    `RepositoryNotFound` when the location holds none. For `manage.py rebuild_catalog`,
    which runs on an empty catalog, where `open_repository` would create an empty repository
    over a wrong location instead of saying that the repository is not there."""
    from backups.engine.repository import Repository

    return Repository.open(engine_backend(), settings.REPOSITORY_KEY)


def open_repository():
    """An opened engine `Repository` for the `backups` storage; `close()` it when done.

    Raises `WrongKey` when no secret of the platform (`REPOSITORY_KEY`, the secret stored at
    the latest key rotation) opens the existing repository, and storage errors
    (`BackendUnavailable`, ...) when the storage cannot be reached.

    The opened repository is cached per process, and each call checks that the config in
    storage is still the one it was opened with (one small read): if the repository was
    replaced (re-initialised, restored from elsewhere), the cache is dropped and the
    repository opened again, so a process never keeps using a key that opens nothing.
    A key rotation needs no such check: it wraps the same master key again, which the
    cached repository holds unwrapped.
    """
    # A fresh object (fresh index, fresh tree cache) sharing the unwrapped key and the backend.
    return _opened_repository().repository.clone()


def reopen_repository() -> tuple[object, str]:
    """Open the repository anew, as a process starting now would, and cache that:
    (repository, where its secret came from: `environment` or `platform`).

    For key management, which must see which key the platform's secrets open now, not which
    key opened this process's cached repository before a rotation elsewhere."""
    forget_cached_repository()
    opened = _opened_repository()
    return opened.repository.clone(), opened.secret_source


def _opened_repository() -> _Opened:
    key = _cache_key()
    with _cache_lock:
        opened = _opened.get(key)
        if opened is not None and not _still_current(opened.repository):
            log.warning("the repository at %s was replaced since this process opened it; "
                        "opening it again", opened.repository.backend.location)
            opened = None
        if opened is None:
            opened = _open_or_init(engine_backend())
            _opened.clear()  # settings changed (tests) or first use: keep only the current one
            _opened[key] = opened
    return opened


def _still_current(template) -> bool:
    try:
        return template.backend.get("config") == template.sealed_config
    except ObjectNotFound:
        return False


def forget_cached_repository() -> None:
    """Drop the per-process cache (tests that change settings, key rotation)."""
    with _cache_lock:
        _opened.clear()


#: One thread runs storage checks: a check stuck on a frozen S3 endpoint makes the next
#: ones time out too (correctly: storage is still not answering) instead of piling up threads.
_health_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storage-health")
HEALTH_TIMEOUT_SECONDS = 5.0


def storage_health(timeout: float = HEALTH_TIMEOUT_SECONDS) -> StorageHealth:
    """(ok, message) for `/ready`: can the repository storage be reached right now?

    Answers within `timeout` seconds whatever the storage does (django-storages' client may
    be configured with long timeouts and retries; a readiness probe must not hang on it).
    """
    future = _health_executor.submit(_check_storage)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        return StorageHealth(False, f"storage did not answer within {timeout:g} s")


def _check_storage() -> StorageHealth:
    try:
        storage = _backups_storage()
        if isinstance(storage, FileSystemStorage):
            location = storage.location
            existing = location
            while not os.path.exists(existing):
                parent = os.path.dirname(existing)
                if parent == existing:
                    break
                existing = parent
            if not (os.path.isdir(existing) and os.access(existing, os.W_OK | os.X_OK)):
                return StorageHealth(False, f"repository directory {location} is not writable")
            state = "initialised" if os.path.exists(os.path.join(location, "config")) \
                else "not initialised yet"
            return StorageHealth(True, f"local repository {location} ({state})")
        backend = engine_backend(retry=False)
        for check_name in ("check_bucket", "check_lockable_repository"):
            check = getattr(backend, check_name, None)
            if check is not None:
                check()
        state = "initialised" if backend.exists("config") else "not initialised yet"
        return StorageHealth(True, f"repository {backend.location} ({state})")
    except EngineError as error:
        return StorageHealth(False, error.message)
    except Exception as error:  # any failure of the storage means "not ready", never a 500
        return StorageHealth(False, f"storage check failed: {type(error).__name__}")
