"""Test helpers: open repositories, compare trees, and craft objects with our own writer."""

from __future__ import annotations

import json
import os
import stat

import pytest

from backups import engine
from backups.engine.format import BlobType, Compression
from backups.engine.packer import PackBuilder, blob_associated_data, pack_name
from backups.engine.snapshot import SnapshotInfo

KEY = "11" * 32  # 64 hex digits: the HKDF path, fast for tests

#: Logic that does not depend on the storage: the local directory is enough (S3 runs are
#: the slow part of the suite, kept for what touches storage behaviour). Parametrizes the
#: `any_backend` fixture of conftest.py.
LOCAL_ONLY = pytest.mark.parametrize("any_backend", ["local"], indirect=True)


def new_repository(path, key=KEY) -> engine.Repository:
    return engine.Repository.init(engine.LocalBackend(str(path)), key)


def snapshot_tree(root) -> dict:
    """{relative path: (type, mode, mtime_ns, content or target, hardlink group)} of a tree."""
    result, inodes = {}, {}
    root = os.fsencode(root)
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                result[relative] = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                result[relative] = ("dir", stat.S_IMODE(info.st_mode), info.st_mtime_ns)
            elif not stat.S_ISREG(info.st_mode):  # FIFO or device node: never opened
                result[relative] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode),
                                    info.st_mtime_ns, info.st_rdev)
            else:
                with open(path, "rb") as handle:
                    content = handle.read()
                group = None
                if info.st_nlink > 1:
                    group = inodes.setdefault(info.st_ino, relative)
                result[relative] = ("file", stat.S_IMODE(info.st_mode), info.st_mtime_ns,
                                    content, group)
    return result


def write_blobs(repo, blobs: list[tuple[bytes, BlobType]]) -> list[bytes]:
    """Store plaintext blobs in one new pack + index, exactly as the engine would."""
    builder, ids = PackBuilder(), []
    for data, blob_type in blobs:
        blob_id = repo.cipher.blob_id(data)
        sealed = repo.cipher.seal(data, blob_associated_data(blob_id, blob_type, Compression.RAW))
        builder.add(blob_id, blob_type, Compression.RAW, sealed, len(data))
        ids.append(blob_id)
    pack_id, data, entries = builder.finish(repo.cipher)
    repo.backend.put(pack_name(pack_id), data)
    repo.write_index({pack_id: entries})
    return ids


def craft_snapshot(repo, tree_document: dict, extra_blobs=()) -> str:
    """Write a snapshot whose root tree is `tree_document` (any JSON, valid or not)."""
    ids = write_blobs(repo, [*extra_blobs, (json.dumps(tree_document).encode(), BlobType.TREE)])
    import datetime as dt
    info = SnapshotInfo(id="", time=dt.datetime.now(dt.timezone.utc), source="crafted",
                        tags=[], tree=ids[-1].hex())
    return repo.write_snapshot(info)


def file_entry(name, content_ids=(), size=0, **extra) -> dict:
    entry = {"name": name, "type": "file", "mode": 0o644, "mtime_ns": 0, "uid": 0, "gid": 0,
             "size": size, "inode": 1, "ctime_ns": 0, "content": [c.hex() for c in content_ids]}
    entry.update(extra)
    return entry


def write_files(directory, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
