"""Pack files: many encrypted blobs in one object, with an encrypted trailer listing them.

Layout of `data/<xx>/<pack id>` (pack id = hex SHA-256 of the whole object)::

    header (6, type PACK)
    blob record * n        nonce (12) | AES-256-GCM ciphertext | tag (16)
                           associated data = blob id (32) | blob type (1) | compression (1)
    trailer envelope       header (6, type PACK_TRAILER) | nonce | GCM(zstd(entries)) | tag
    trailer length (4)     little-endian uint32: size of the trailer envelope

Trailer entries (before zstd), little-endian: uint32 count, then per blob
`id (32) | type u8 | compression u8 | offset u32 | length u32 | raw length u32`, where
offset/length locate the blob record inside the pack and raw length is the plaintext size.
The trailer lets `verify`/`rebuild-index` recover an index from packs alone.
"""

from __future__ import annotations

import hashlib
import struct
from typing import NamedTuple

from .crypto import RepositoryCipher
from .errors import FormatError, DataIntegrityError
from .format import HEADER_SIZE, ObjectType, check_header, header

TRAILER_ENTRY = struct.Struct("<32sBBIII")
TRAILER_LENGTH = struct.Struct("<I")
COUNT = struct.Struct("<I")


class PackEntry(NamedTuple):
    """One blob record inside a pack."""

    blob_id: bytes
    blob_type: int
    compression: int
    offset: int
    length: int
    raw_length: int


def blob_associated_data(blob_id: bytes, blob_type: int, compression: int) -> bytes:
    """Binds a blob record to its id, type and compression flag (GCM associated data)."""
    return blob_id + bytes((blob_type, compression))


def pack_name(pack_id: str) -> str:
    """The backend name of a pack: `data/<first two hex digits>/<pack id>`."""
    return f"data/{pack_id[:2]}/{pack_id}"


class PackBuilder:
    """Accumulates sealed blob records until the pack is large enough, then `finish`es.

    Not thread-safe; the archiver serialises `add` under its own lock.
    """

    def __init__(self) -> None:
        # One growing buffer rather than a list joined at the end: joining would hold the
        # pack twice at the moment it is finished (measured: the largest RSS term).
        self._buffer = bytearray(header(ObjectType.PACK))
        self.entries: list[PackEntry] = []

    @property
    def size(self) -> int:
        return len(self._buffer)

    def add(self, blob_id: bytes, blob_type: int, compression: int, sealed: bytes,
            raw_length: int) -> None:
        self.entries.append(PackEntry(blob_id, blob_type, compression, len(self._buffer),
                                      len(sealed), raw_length))
        self._buffer += sealed

    def finish(self, cipher: RepositoryCipher) -> tuple[str, bytearray, list[PackEntry]]:
        """(pack id, pack bytes, entries). The builder must not be used afterwards.

        The bytes are a bytearray (backends accept any buffer) to avoid a copy."""
        envelope = cipher.seal_envelope(ObjectType.PACK_TRAILER, _trailer(self.entries))
        data = self._buffer
        self._buffer = bytearray()
        data += envelope
        data += TRAILER_LENGTH.pack(len(envelope))
        return hashlib.sha256(data).hexdigest(), data, self.entries


class PackSpool:
    """A pack written to a backend spool file as blobs are added, not held in memory.

    Why: a backup has an open data pack, a tree pack and up to two finished packs waiting
    for storage; in memory that was 50-64 MiB of the process's peak (the largest term),
    on disk it is page cache the kernel can write back. The SHA-256 pack id is computed
    while writing. The file is opened on the first `add`, so an unchanged backup opens none.
    Not thread-safe; the pipeline serialises `add` under its own lock.
    """

    def __init__(self, open_spool) -> None:
        self._open_spool = open_spool
        self.spool = None
        self._hash = hashlib.sha256()
        self.size = 0
        self.entries: list[PackEntry] = []

    def _append(self, data: bytes) -> None:
        if self.spool is None:
            self.spool = self._open_spool()
            self._write(header(ObjectType.PACK))
        self._write(data)

    def _write(self, data: bytes) -> None:
        self.spool.write(data)
        self._hash.update(data)
        self.size += len(data)

    def add(self, blob_id: bytes, blob_type: int, compression: int, sealed: bytes,
            raw_length: int) -> None:
        offset = self.size if self.spool is not None else HEADER_SIZE
        self.entries.append(PackEntry(blob_id, blob_type, compression, offset, len(sealed),
                                      raw_length))
        self._append(sealed)

    def finish(self, cipher: RepositoryCipher) -> tuple[str, list[PackEntry]]:
        """Append the trailer; (pack id, entries). Store `spool` next, then `close`."""
        envelope = cipher.seal_envelope(ObjectType.PACK_TRAILER, _trailer(self.entries))
        self._append(envelope)
        self._append(TRAILER_LENGTH.pack(len(envelope)))
        return self._hash.hexdigest(), self.entries

    def close(self) -> None:
        """Release the spool file (removing it unless the backend stored it in place)."""
        if self.spool is not None:
            self.spool.close()


def _trailer(entries: list[PackEntry]) -> bytes:
    return COUNT.pack(len(entries)) + b"".join(TRAILER_ENTRY.pack(*entry) for entry in entries)


def parse_trailer(cipher: RepositoryCipher, envelope: bytes, pack_size: int,
                  what: str) -> list[PackEntry]:
    """Decode and check a pack trailer envelope (entries must lie inside the pack)."""
    payload = cipher.open_envelope(envelope, ObjectType.PACK_TRAILER, what)
    if len(payload) < COUNT.size:
        raise FormatError(f"{what}: trailer too short")
    (count,) = COUNT.unpack_from(payload, 0)
    if len(payload) != COUNT.size + count * TRAILER_ENTRY.size:
        raise FormatError(f"{what}: trailer length does not match its entry count")
    entries = [PackEntry(*fields) for fields in
               TRAILER_ENTRY.iter_unpack(memoryview(payload)[COUNT.size:])]
    limit = pack_size - len(envelope) - TRAILER_LENGTH.size
    for entry in entries:
        if entry.offset < HEADER_SIZE or entry.offset + entry.length > limit:
            raise FormatError(f"{what}: trailer entry points outside the pack")
    return entries


def read_pack_entries(backend, cipher: RepositoryCipher, pack_id: str) -> list[PackEntry]:
    """Read a pack's trailer from storage (two ranged reads) and return its entries."""
    name = pack_name(pack_id)
    size = backend.size(name)
    if size < HEADER_SIZE + TRAILER_LENGTH.size:
        raise DataIntegrityError(f"{name}: too short to be a pack")
    check_header(backend.get(name, 0, HEADER_SIZE), ObjectType.PACK, name)
    (trailer_length,) = TRAILER_LENGTH.unpack(backend.get(name, size - TRAILER_LENGTH.size,
                                                          TRAILER_LENGTH.size))
    if trailer_length > size - HEADER_SIZE - TRAILER_LENGTH.size:
        raise DataIntegrityError(f"{name}: trailer length out of range")
    envelope = backend.get(name, size - TRAILER_LENGTH.size - trailer_length, trailer_length)
    return parse_trailer(cipher, envelope, size, name)
