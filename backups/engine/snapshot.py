"""Snapshot manifests (`snapshots/<id>`): the commit point of a backup.

An envelope (type SNAPSHOT) whose payload is UTF-8 JSON::

    {"version": 1 | 2, "time": ISO-8601 UTC, "hostname": str, "source": str, "paths": [str],
     "tags": [str], "tree": hex root tree id, "parent": snapshot id | null,
     "stats": {...}, "warnings": [str],
     "metadata": {...},                       # version 2 only
     "original": snapshot id}                 # only in copies, either version

`metadata` is a JSON object that belongs to the caller (the platform stores its catalog
record of the volume and the backup there, see `backups/catalog_records.py`); the engine
stores and returns it and never interprets it. A manifest with metadata is written as
version 2, one without as version 1, byte for byte as before, so a reader that knows only
version 1 keeps reading every manifest the CLI writes and refuses ("unsupported manifest
version") only the ones whose metadata it would otherwise drop unseen.

`original` is present only in a manifest that `copy.py` rewrote for an unrelated repository:
the id of the snapshot it copies (so a second copy skips it). Readers that predate it ignore
it like any unknown key; nothing else depends on it.

The id is the hex SHA-256 of the stored bytes. A snapshot is written only after every pack
and the index it needs are stored, so any snapshot that exists is complete.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass, field

from .errors import FormatError

SNAPSHOT_VERSION = 1
#: Version 1 plus the caller's `metadata` object.
SNAPSHOT_VERSION_METADATA = 2
SNAPSHOT_VERSIONS = (SNAPSHOT_VERSION, SNAPSHOT_VERSION_METADATA)


@dataclass
class SnapshotInfo:
    """A snapshot as the API and CLI see it."""

    id: str
    time: dt.datetime
    source: str
    tags: list[str]
    tree: str
    hostname: str = ""
    paths: list[str] = field(default_factory=list)
    parent: str | None = None
    stats: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: The caller's JSON object (empty for version-1 manifests).
    metadata: dict = field(default_factory=dict)
    #: The id of the snapshot this one was copied from into an unrelated repository
    #: (copy.py); None for a snapshot made here or copied byte for byte.
    original: str | None = None

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def to_json(self) -> dict:
        """The public description (CLI `snapshots --json`, API)."""
        return {"id": self.id, "short_id": self.short_id, "time": self.time.isoformat(),
                "source": self.source, "tags": list(self.tags), "hostname": self.hostname,
                "paths": list(self.paths), "parent": self.parent, "tree": self.tree,
                "stats": dict(self.stats), "warnings": list(self.warnings),
                "metadata": copy.deepcopy(self.metadata), "original": self.original}


def encode_snapshot(info: SnapshotInfo) -> bytes:
    document = info.to_json()
    del document["id"], document["short_id"]
    if document["original"] is None:
        del document["original"]  # manifests that are not copies keep their exact bytes
    if document["metadata"]:
        document["version"] = SNAPSHOT_VERSION_METADATA
    else:
        del document["metadata"]
        document["version"] = SNAPSHOT_VERSION
    return json.dumps(document, sort_keys=True).encode("utf-8")


def decode_snapshot(snapshot_id: str, payload: bytes) -> SnapshotInfo:
    """Parse and validate a manifest payload; `FormatError` when unsupported or malformed."""
    what = f"snapshots/{snapshot_id}"
    try:
        document = json.loads(payload)
    except ValueError:
        raise FormatError(f"{what}: manifest is not valid JSON") from None
    if not isinstance(document, dict) or document.get("version") not in SNAPSHOT_VERSIONS:
        raise FormatError(f"{what}: unsupported manifest version")
    try:
        tree = document["tree"]
        if not isinstance(tree, str) or len(tree) != 64:
            raise ValueError
        bytes.fromhex(tree)
        time = dt.datetime.fromisoformat(document["time"])
        if time.tzinfo is None:
            time = time.replace(tzinfo=dt.timezone.utc)
        tags = [str(tag) for tag in document.get("tags", [])]
        metadata = {}
        if document["version"] == SNAPSHOT_VERSION_METADATA:
            # Version 1 writers never wrote the key; a version-1 manifest that has one was
            # not written by this engine, and its metadata is ignored like any unknown key.
            metadata = document["metadata"]
            if not isinstance(metadata, dict):
                raise ValueError
        return SnapshotInfo(id=snapshot_id, time=time, source=str(document.get("source", "")),
                            tags=tags, tree=tree, hostname=str(document.get("hostname", "")),
                            paths=[str(p) for p in document.get("paths", [])],
                            parent=document.get("parent"),
                            stats=dict(document.get("stats") or {}),
                            warnings=[str(w) for w in document.get("warnings") or []],
                            metadata=metadata, original=_original(document.get("original")))
    except (KeyError, ValueError, TypeError):
        raise FormatError(f"{what}: malformed manifest") from None


def _original(value: object) -> str | None:
    """A copied manifest's `original`: a full snapshot id, or absent."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError
    bytes.fromhex(value)
    return value
