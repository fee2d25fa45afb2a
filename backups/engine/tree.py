"""Directory trees: one blob (type TREE) per directory, JSON, versioned, strictly validated.

Tree blob plaintext (UTF-8 JSON, keys sorted, entries sorted by name bytes)::

    {"version": 1, "entries": [entry, ...]}

    entry = {"name": str,            # os.fsdecode(name): undecodable bytes as lone
                                     # surrogates (\\udcXX), so any POSIX name round-trips
             "type": "file" | "dir" | "symlink",
             "mode": int,            # permission bits incl. setuid/setgid/sticky (S_IMODE)
             "mtime_ns": int, "uid": int, "gid": int,
             "size": int,            # file: bytes; others 0
             "content": [hex id],    # file: data blob ids in order
             "subtree": hex id,      # dir: its tree blob
             "target": str,          # symlink: target, fsdecoded like names
             "inode": int, "ctime_ns": int,   # for parent-snapshot change detection
             "hardlink": str | null} # "dev:inode" when st_nlink > 1: restore re-links

A reader refuses (FormatError / UnsafePath) an unknown version, unknown types, names that
could escape a directory ("", ".", "..", containing "/" or NUL), duplicate names and
out-of-range numbers, so a crafted tree cannot steer restore outside its target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .errors import FormatError, UnsafePath

TREE_VERSION = 1
ENTRY_TYPES = ("file", "dir", "symlink")
MAX_SIZE = 1 << 62
MAX_TREE_BYTES = 256 * 1024 * 1024


@dataclass(slots=True)
class TreeEntry:
    """One name in a directory of a snapshot."""

    name: str
    type: str
    mode: int = 0o644
    mtime_ns: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    content: list[bytes] = field(default_factory=list)
    subtree: bytes | None = None
    target: str = ""
    inode: int = 0
    ctime_ns: int = 0
    hardlink: str | None = None

    def to_json(self) -> dict:
        data = {"name": self.name, "type": self.type, "mode": self.mode,
                "mtime_ns": self.mtime_ns, "uid": self.uid, "gid": self.gid,
                "size": self.size, "inode": self.inode, "ctime_ns": self.ctime_ns}
        if self.type == "file":
            data["content"] = [blob_id.hex() for blob_id in self.content]
            if self.hardlink:
                data["hardlink"] = self.hardlink
        elif self.type == "dir":
            data["subtree"] = self.subtree.hex() if self.subtree else None
        elif self.type == "symlink":
            data["target"] = self.target
        return data

    def public(self) -> dict:
        """A JSON-able description for browse APIs (no internal ids)."""
        return {"name": self.name, "type": self.type, "mode": self.mode,
                "mtime_ns": self.mtime_ns, "uid": self.uid, "gid": self.gid,
                "size": self.size, "target": self.target if self.type == "symlink" else None}


def check_name(name: object) -> str:
    """Return `name` if it is a safe single path component, else raise `UnsafePath`."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise UnsafePath(f"unsafe name in snapshot tree: {name!r}")
    return name


def encode_tree(entries: list[TreeEntry]) -> bytes:
    """Canonical bytes of a tree: identical directories give identical blobs (dedup)."""
    ordered = sorted(entries, key=lambda entry: entry.name.encode("utf-8", "surrogateescape"))
    return json.dumps({"version": TREE_VERSION, "entries": [e.to_json() for e in ordered]},
                      sort_keys=True, separators=(",", ":")).encode("ascii")


def _integer(data: dict, key: str, low: int = 0, high: int = MAX_SIZE) -> int:
    value = data.get(key, 0)
    if type(value) is not int or not low <= value <= high:
        raise FormatError(f"tree entry field {key!r} out of range")
    return value


#: (field, lowest, highest) of the integer fields every entry carries.
_INTEGER_FIELDS = (("mode", 0, 0o7777), ("mtime_ns", -MAX_SIZE, MAX_SIZE),
                   ("uid", 0, 2**32), ("gid", 0, 2**32), ("size", 0, MAX_SIZE),
                   ("inode", 0, 2**64), ("ctime_ns", -MAX_SIZE, MAX_SIZE))


def _blob_id(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise FormatError("tree entry has a malformed blob id")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise FormatError("tree entry has a malformed blob id") from None


def decode_tree(plaintext: bytes) -> list[TreeEntry]:
    """Parse and validate a tree blob. See the module docstring for what is refused."""
    try:
        document = json.loads(plaintext)
    except ValueError:
        raise FormatError("tree blob is not valid JSON") from None
    if not isinstance(document, dict) or document.get("version") != TREE_VERSION:
        version = document.get("version") if isinstance(document, dict) else None
        raise FormatError(f"tree blob has unsupported version {version!r}")
    raw_entries = document.get("entries")
    if not isinstance(raw_entries, list):
        raise FormatError("tree blob has no entry list")
    entries, seen = [], set()
    for raw in raw_entries:
        if not isinstance(raw, dict):
            raise FormatError("tree entry is not an object")
        name = check_name(raw.get("name"))
        if name in seen:
            raise UnsafePath(f"duplicate name in snapshot tree: {name!r}")
        seen.add(name)
        kind = raw.get("type")
        if kind not in ENTRY_TYPES:
            raise FormatError(f"tree entry {name!r} has unknown type {kind!r}")
        values = []
        for key, low, high in _INTEGER_FIELDS:
            value = raw.get(key, 0)
            if type(value) is not int or not low <= value <= high:
                raise FormatError(f"tree entry {name!r}: field {key!r} out of range")
            values.append(value)
        mode, mtime_ns, uid, gid, size, inode, ctime_ns = values
        entry = TreeEntry(name, kind, mode, mtime_ns, uid, gid, size, inode=inode,
                          ctime_ns=ctime_ns)
        if kind == "file":
            content = raw.get("content", [])
            if not isinstance(content, list):
                raise FormatError(f"tree entry {name!r} has a malformed content list")
            entry.content = [_blob_id(value) for value in content]
            hardlink = raw.get("hardlink")
            if hardlink is not None and not isinstance(hardlink, str):
                raise FormatError(f"tree entry {name!r} has a malformed hardlink key")
            entry.hardlink = hardlink
        elif kind == "dir":
            entry.subtree = _blob_id(raw.get("subtree"))
        else:
            target = raw.get("target")
            if not isinstance(target, str) or not target or "\x00" in target:
                raise FormatError(f"symlink {name!r} has a malformed target")
            entry.target = target
        entries.append(entry)
    return entries
