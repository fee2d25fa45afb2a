"""Byte-level framing shared by every stored object (see docs/repository-format.md).

Every object the engine writes starts with the same 6-byte header::

    offset  size  field
    0       4     magic  b"SPBK"  ("Storage Platform BacKup")
    4       1     format version (FORMAT_VERSION, currently 1)
    5       1     object type (ObjectType)

Readers refuse an unknown magic, version or an unexpected type with `FormatError` before
touching anything else, so a future format can never be misread as this one.

Encrypted objects (config, index, snapshot, pack trailer) are an *envelope*::

    header (6) | nonce (12) | AES-256-GCM ciphertext of zstd(payload) | tag (16)

with the header as associated data, so an object cannot be passed off as another type.
"""

from __future__ import annotations

import enum
import struct

from .errors import FormatError

MAGIC = b"SPBK"
FORMAT_VERSION = 1
HEADER = struct.Struct("<4sBB")
HEADER_SIZE = HEADER.size  # 6
NONCE_SIZE = 12
TAG_SIZE = 16


class ObjectType(enum.IntEnum):
    """The type byte of the header. Values are part of the format: never renumber."""

    CONFIG = 1
    KEY = 2
    PACK = 3
    INDEX = 4
    SNAPSHOT = 5
    PACK_TRAILER = 6


class BlobType(enum.IntEnum):
    """What a blob inside a pack holds. Part of the format: never renumber."""

    DATA = 1
    TREE = 2


class Compression(enum.IntEnum):
    """How a blob's plaintext is stored before encryption. Part of the format."""

    RAW = 0
    ZSTD = 1


def header(object_type: ObjectType) -> bytes:
    """The 6-byte header for an object of `object_type` in the current format."""
    return HEADER.pack(MAGIC, FORMAT_VERSION, int(object_type))


def check_header(data: bytes | memoryview, expected: ObjectType, what: str) -> None:
    """Raise `FormatError` unless `data` starts with a current header of type `expected`."""
    if len(data) < HEADER_SIZE:
        raise FormatError(f"{what}: too short to be a repository object")
    magic, version, object_type = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise FormatError(f"{what}: not a repository object (bad magic)")
    if version != FORMAT_VERSION:
        raise FormatError(f"{what}: unsupported format version {version} "
                          f"(this engine reads version {FORMAT_VERSION})")
    if object_type != expected:
        raise FormatError(f"{what}: unexpected object type {object_type} "
                          f"(expected {int(expected)} {expected.name.lower()})")
