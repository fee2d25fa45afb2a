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
                         progress=callback, cancel=callable)         -> BackupResult
    repo.snapshots(source=None, tags=None)                          -> list[SnapshotInfo]
    repo.restore(snapshot_id_or_"latest", target_dir, sub_path=None,
                 progress=callback, cancel=callable)                -> RestoreResult
    repo.list_dir(snapshot_id, path="/")                            -> list[TreeEntry]
    repo.open_file(snapshot_id, path)                               -> Iterator[bytes]
    repo.verify(read_data_percent=0.0, progress=callback)           -> VerifyReport
    repo.forget(RetentionPolicy(...), source=None, dry_run=False,
                now=datetime)                                       -> ForgetResult
    repo.delete_snapshot(snapshot_id)
    repo.prune(dry_run=False, progress=callback)                    -> PruneResult
    repo.stats()                                                    -> RepositoryStats
    repo.close()

`progress(done_bytes: int, total_bytes: int, message: str)` is called at most a few times per
second; `cancel()` is polled between chunks and, when it returns True, the operation stops
with `Cancelled` and leaves no snapshot. All errors derive from `errors.EngineError`, which
carries `code`, `http_status`, `transient` and `exit_code`.
"""
