"""The backup engine: a plain Python library (no Django import) that turns a directory into an
encrypted, deduplicated, compressed snapshot in a repository, and back.

Public API (the Django app, the CLI and the benchmarks use only these names)::

    from backups import engine

    backend = engine.open_backend("s3://bucket/prefix" or "/path/to/repo")   # or LocalBackend / S3Backend
    kek = engine.load_key_encryption_key(secret_str_or_bytes)
    repo = engine.Repository.init(backend, kek)       # RepositoryExists if already there
    repo = engine.Repository.open(backend, kek)       # WrongKey, RepositoryNotFound, FormatError

    result = repo.backup(source_dir, source="volume:<id>", tags=["volume:<id>"],
                         parent="auto" | snapshot_id | None,
                         progress=callback, cancel=callable,
                         metadata={...},
                         retention=engine.Retention.for_days("GOVERNANCE", 30))  -> BackupResult
                         # retention: S3 Object Lock of everything the snapshot needs (objectlock.py)
    repo.snapshots(source=None, tags=None)                          -> list[SnapshotInfo]
    repo.copy_to(target_repo, snapshot_ids=None, progress=callback, cancel=callable,
                 retention=None)                                    -> CopyResult
                         # retention: lock each copy and what it needs in the target
    repo.restore(snapshot_id_or_"latest", target_dir, sub_path=None,
                 progress=callback, cancel=callable)                -> RestoreResult
    repo.drill(snapshot_id, scratch_dir, progress=callback,
               cancel=callable)                                     -> DrillReport
    repo.list_dir(snapshot_id, path="/")                            -> list[TreeEntry]
    repo.open_file(snapshot_id, path)                               -> Iterator[bytes]
    repo.verify(read_data_percent=0.0, progress=callback)           -> VerifyReport
    repo.forget(RetentionPolicy(...), source=None, dry_run=False,
                now=datetime)                                       -> ForgetResult
    repo.delete_snapshot(snapshot_id)                               # ObjectLocked while locked
    repo.prune(dry_run=False, progress=callback)                    -> PruneResult
    repo.stats()                                                    -> RepositoryStats
    repo.add_key(secret) -> "keys/<id>";  repo.list_keys();  repo.remove_key("keys/<id>")
    repo.close()

`progress(done_bytes: int, total_bytes: int, message: str)` is called at most a few times per
second; `cancel()` is polled between chunks and, when it returns True, the operation stops
with `Cancelled` and leaves no snapshot. All errors derive from `errors.EngineError`, which
carries `code`, `transient` and `exit_code` (the platform maps `code` to an HTTP status).
"""

from __future__ import annotations

from . import errors
from .archiver import BackupResult
from .backend import Backend
from .backends import LocalBackend, open_backend
from .drill import DrillReport
from .errors import *  # noqa: F401,F403  (the error hierarchy is part of the public API)
from .keys import KeyEncryptionKey, load_key_encryption_key
from .objectlock import Retention
from .repository import Repository, RepositoryStats
from .restorer import RestoreResult
from .snapshot import SnapshotInfo
from .tree import TreeEntry

__all__ = ["Backend", "LocalBackend", "S3Backend", "RetryingBackend", "open_backend",
           "KeyEncryptionKey", "load_key_encryption_key", "Repository", "RepositoryStats",
           "BackupResult", "RestoreResult", "DrillReport", "SnapshotInfo", "TreeEntry", "RetentionPolicy",
           "VerifyReport", "ForgetResult", "PruneResult", "Retention", "errors"]

# Names whose modules are heavy (boto3) or owned by the storage side are imported on first use.
_LAZY = {"S3Backend": "backends", "RetryingBackend": "backends", "RetentionPolicy": "retention",
         "VerifyReport": "verify", "ForgetResult": "prune", "PruneResult": "prune"}


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'backups.engine' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{module_name}", __name__)
    return getattr(module, name)
