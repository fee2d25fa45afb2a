"""The engine's one error hierarchy.

Each class's docstring is its user-facing message when none is given. Every error knows:

* `code`: a stable machine name (the API's error `code`, matched by scripts; the platform
  maps it to an HTTP status in `storage_platform/errors.py`),
* `transient`: True when retrying the same operation later may succeed (network, 5xx,
  throttling, a held lock); job runners retry only these,
* `exit_code`: the CLI's exit status.

Messages never contain key material, plaintext, or credentials.
"""

from __future__ import annotations


class EngineError(Exception):
    """The backup engine failed."""

    code = "engine_error"
    transient = False
    exit_code = 1

    def __init__(self, message: str | None = None, *, detail: dict | None = None):
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        self.detail = detail or {}
        super().__init__(self.message)


# --- repository and keys ----------------------------------------------------------------
class RepositoryNotFound(EngineError):
    """No repository exists at this location."""

    code = "repository_not_found"
    exit_code = 10


class RepositoryExists(EngineError):
    """A repository already exists at this location."""

    code = "repository_exists"
    exit_code = 11


class WrongKey(EngineError):
    """The key does not open this repository."""

    code = "wrong_key"
    exit_code = 12


class KeyMissing(EngineError):
    """No key-encryption key was given."""

    code = "key_missing"
    exit_code = 12


class KeyNotFound(EngineError):
    """No key object with this name exists in the repository."""

    code = "key_not_found"
    exit_code = 12


class LastKey(EngineError):
    """Refusing to remove the repository's last key: nothing could open it afterwards."""

    code = "last_key"
    exit_code = 12


class KeyInUse(EngineError):
    """Refusing to remove the key in use: open the repository with another key to remove it."""

    code = "key_in_use"
    exit_code = 12


class OrphanKey(EngineError):
    """Refusing to remove an orphan key alone: `repair-orphans` removes it with what it sealed.

    Removed alone, the index objects and manifests it sealed could no longer be read nor
    found, and every reader of the index would fail on them for good.
    """

    code = "orphan_key"
    exit_code = 12


class FormatError(EngineError):
    """An object has an unknown magic or an unsupported format version."""

    code = "format_error"
    exit_code = 13


class DataIntegrityError(EngineError):
    """Stored data failed authentication or does not match its id (damage or tampering)."""

    code = "integrity_error"
    exit_code = 14


class SnapshotNotFound(EngineError):
    """No snapshot with this id exists."""

    code = "snapshot_not_found"
    exit_code = 15


class PathNotFound(EngineError):
    """No such path in the snapshot."""

    code = "path_not_found"
    exit_code = 15


class UnsafePath(EngineError):
    """An entry would be written outside the target directory; refused."""

    code = "unsafe_path"
    exit_code = 16


class SourceError(EngineError):
    """The source directory cannot be read."""

    code = "source_error"
    exit_code = 17


class TargetError(EngineError):
    """The restore target cannot be written."""

    code = "target_error"
    exit_code = 18


class RepositoryLocked(EngineError):
    """The repository is locked by another operation."""

    code = "repository_locked"
    transient = True
    exit_code = 19


class Cancelled(EngineError):
    """The operation was cancelled."""

    code = "cancelled"
    exit_code = 130


# --- storage backends --------------------------------------------------------------------
class BackendError(EngineError):
    """The storage backend failed."""

    code = "backend_error"
    exit_code = 20


class ObjectNotFound(BackendError):
    """The object does not exist in the repository storage."""

    code = "object_not_found"
    exit_code = 21


class ObjectCorrupt(BackendError):
    """The object in the repository storage is truncated or damaged."""

    code = "object_corrupt"
    exit_code = 14


class BackendUnavailable(BackendError):
    """The repository storage is unreachable or failed temporarily."""

    code = "storage_unavailable"
    transient = True
    exit_code = 22


# --- retention ----------------------------------------------------------
class InvalidRetentionPolicy(EngineError, ValueError):
    """The retention policy is not valid."""

    code = "invalid_retention"
    exit_code = 2


# --- object lock -------------------------------------------------------------------------
class InvalidObjectLock(EngineError, ValueError):
    """The object lock settings are not valid."""

    code = "invalid_object_lock"
    exit_code = 2


class ObjectLockUnsupported(BackendError):
    """The repository storage cannot lock objects (S3 with Object Lock enabled on the bucket
    is required)."""

    code = "object_lock_unsupported"
    exit_code = 23


class ObjectLocked(BackendError):
    """The object is locked (S3 Object Lock) and cannot be deleted before its retention ends."""

    code = "object_locked"
    exit_code = 24
