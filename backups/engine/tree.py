"""Directory trees: one blob (type TREE) per directory, JSON, versioned, strictly validated.

Tree blob plaintext (UTF-8 JSON, keys sorted, entries sorted by name bytes)::

    {"version": 1 | 2, "entries": [entry, ...]}

    entry = {"name": str,            # os.fsdecode(name): undecodable bytes as lone
                                     # surrogates (\\udcXX), so any POSIX name round-trips
             "type": "file" | "dir" | "symlink" | "fifo" | "chardev" | "blockdev",
             "mode": int,            # permission bits incl. setuid/setgid/sticky (S_IMODE)
             "mtime_ns": int, "uid": int, "gid": int,
             "size": int,            # file: bytes; others 0
             "content": [hex id],    # file: data blob ids in order
             "subtree": hex id,      # dir: its tree blob
             "target": str,          # symlink: target, fsdecoded like names
             "inode": int, "ctime_ns": int,   # for parent-snapshot change detection
             "hardlink": str | null, # "dev:inode" when st_nlink > 1: restore re-links
             "rdev": int,            # chardev/blockdev: the device number (st_rdev)
             "xattrs": {str: str}}   # extended attributes (incl. POSIX ACLs as
                                     # system.posix_acl_*): fsdecoded name -> base64 value

Version 2 is written only for a tree that needs it (an entry with xattrs, or a FIFO or
device node); every other tree stays version 1, byte-identical to what older writers
produced (dedup across versions, and older readers still read those). Readers accept both
(a version-1 tree may hold only files, directories and symlinks, and its xattrs are ignored);
an older reader refuses a version-2 tree instead of silently dropping what it cannot restore.

A reader refuses (FormatError / UnsafePath) an unknown version, unknown types, names that
could escape a directory ("", ".", "..", containing "/" or NUL), duplicate names and
out-of-range numbers, so a crafted tree cannot steer restore outside its target.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field

from .errors import FormatError, UnsafePath

TREE_VERSION = 1
#: Written for trees with extended attributes or special files (see the module docstring).
TREE_VERSION_EXTENDED = 2
TREE_VERSIONS = (TREE_VERSION, TREE_VERSION_EXTENDED)
SPECIAL_TYPES = ("fifo", "chardev", "blockdev")
DEVICE_TYPES = ("chardev", "blockdev")
ENTRY_TYPES = ("file", "dir", "symlink") + SPECIAL_TYPES
#: Linux caps one attribute value at 64 KiB and a name at 255 bytes.
MAX_XATTR_VALUE = 64 * 1024
MAX_XATTR_NAME = 255
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
    rdev: int = 0
    xattrs: dict[str, bytes] | None = None

    def extended(self) -> bool:
        """True when this entry needs a version-2 tree."""
        return bool(self.xattrs) or self.type in SPECIAL_TYPES

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
        elif self.type in DEVICE_TYPES:
            data["rdev"] = self.rdev
        if self.xattrs:
            data["xattrs"] = encode_xattrs(self.xattrs)
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


def encode_xattrs(xattrs: dict[str, bytes]) -> dict[str, str]:
    """The JSON form of extended attributes: name -> base64 of the value."""
    return {name: base64.b64encode(value).decode("ascii") for name, value in xattrs.items()}


def decode_xattrs(raw: object, name: str) -> dict[str, bytes]:
    """Validate and decode an entry's `xattrs` object (`FormatError` when malformed)."""
    if not isinstance(raw, dict):
        raise FormatError(f"tree entry {name!r} has malformed extended attributes")
    xattrs = {}
    for key, value in raw.items():
        if (not key or "\x00" in key or len(os.fsencode(key)) > MAX_XATTR_NAME
                or "." not in key or not isinstance(value, str)):
            raise FormatError(f"tree entry {name!r} has a malformed extended attribute")
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"tree entry {name!r} has a malformed extended attribute") from None
        if len(decoded) > MAX_XATTR_VALUE:
            raise FormatError(f"tree entry {name!r}: extended attribute {key!r} too large")
        xattrs[key] = decoded
    return xattrs


def encode_tree(entries: list[TreeEntry]) -> bytes:
    """Canonical bytes of a tree: identical directories give identical blobs (dedup)."""
    ordered = sorted(entries, key=lambda entry: entry.name.encode("utf-8", "surrogateescape"))
    version = TREE_VERSION_EXTENDED if any(e.extended() for e in ordered) else TREE_VERSION
    return json.dumps({"version": version, "entries": [e.to_json() for e in ordered]},
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
    if not isinstance(document, dict) or document.get("version") not in TREE_VERSIONS:
        version = document.get("version") if isinstance(document, dict) else None
        raise FormatError(f"tree blob has unsupported version {version!r}")
    # Version 1 is exactly the format before special files and xattrs existed.
    types = ENTRY_TYPES if document["version"] == TREE_VERSION_EXTENDED else ENTRY_TYPES[:3]
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
        if kind not in types:
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
        elif kind in SPECIAL_TYPES:
            if kind in DEVICE_TYPES:
                entry.rdev = _integer(raw, "rdev", 0, 2**64)
        else:
            target = raw.get("target")
            if not isinstance(target, str) or not target or "\x00" in target:
                raise FormatError(f"symlink {name!r} has a malformed target")
            entry.target = target
        if "xattrs" in raw and types is ENTRY_TYPES:
            entry.xattrs = decode_xattrs(raw["xattrs"], name) or None
        entries.append(entry)
    return entries
