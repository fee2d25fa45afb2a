"""The blob index: blob id -> (pack, offset, length, raw length, type, compression).

Each backup writes one `index/<id>` object (id = hex SHA-256 of the stored bytes) for the
packs it wrote, after the packs and before the snapshot. The in-memory `Index` is the union
of all index objects. An envelope (type INDEX) holds, little-endian before zstd::

    uint32 pack count, then pack ids (32 raw bytes each)
    uint32 entry count, then per blob:
      id (32) | pack number u32 (into the list above) | type u8 | compression u8 |
      offset u32 | length u32 | raw length u32
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .backend import retention_arguments
from .crypto import RepositoryCipher
from .errors import FormatError
from .format import ObjectType
from .packer import PackEntry

INDEX_ENTRY = struct.Struct("<32sIBBIII")
COUNT = struct.Struct("<I")
PACK_ID = struct.Struct("<32s")


class IndexEntry(NamedTuple):
    """Where a blob lives."""

    pack_id: str
    blob_type: int
    compression: int
    offset: int
    length: int
    raw_length: int


def encode_index(packs: dict[str, list[PackEntry]]) -> bytes:
    """The payload of an index object listing every blob of `packs` (pack id -> entries)."""
    pack_ids = list(packs)
    parts = [COUNT.pack(len(pack_ids))]
    parts.extend(bytes.fromhex(pack_id) for pack_id in pack_ids)
    entries = []
    for number, pack_id in enumerate(pack_ids):
        for entry in packs[pack_id]:
            entries.append(INDEX_ENTRY.pack(entry.blob_id, number, entry.blob_type,
                                            entry.compression, entry.offset, entry.length,
                                            entry.raw_length))
    parts.append(COUNT.pack(len(entries)))
    parts.extend(entries)
    return b"".join(parts)


def decode_index(payload: bytes, what: str) -> Iterator[tuple[bytes, IndexEntry]]:
    """Yield (blob id, entry) from an index payload; `FormatError` when malformed."""
    view = memoryview(payload)
    try:
        (pack_count,) = COUNT.unpack_from(view, 0)
        position = COUNT.size
        pack_ids = [view[position + 32 * i: position + 32 * (i + 1)].hex()
                    for i in range(pack_count)]
        position += 32 * pack_count
        (entry_count,) = COUNT.unpack_from(view, position)
        position += COUNT.size
    except struct.error:
        raise FormatError(f"{what}: truncated index") from None
    if len(view) - position != entry_count * INDEX_ENTRY.size or len(pack_ids) != pack_count:
        raise FormatError(f"{what}: index length does not match its counts")
    for blob_id, number, blob_type, compression, offset, length, raw in \
            INDEX_ENTRY.iter_unpack(view[position:]):
        if number >= pack_count:
            raise FormatError(f"{what}: index entry names a pack that is not listed")
        yield blob_id, IndexEntry(pack_ids[number], blob_type, compression, offset, length, raw)


class Index:
    """The in-memory union of index objects. Thread-safe for concurrent add/lookup."""

    def __init__(self) -> None:
        self._entries: dict[bytes, IndexEntry] = {}
        self.index_names: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._entries

    def get(self, blob_id: bytes) -> IndexEntry | None:
        return self._entries.get(blob_id)

    def items(self) -> Iterable[tuple[bytes, IndexEntry]]:
        return self._entries.items()

    def packs(self) -> set[str]:
        """Every pack id some index entry points to."""
        return {entry.pack_id for entry in self._entries.values()}

    def add_pack(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        with self._lock:
            for entry in entries:
                self._entries.setdefault(entry.blob_id, IndexEntry(
                    pack_id, entry.blob_type, entry.compression, entry.offset, entry.length,
                    entry.raw_length))

    def load(self, name: str, payload: bytes) -> None:
        with self._lock:
            for blob_id, entry in decode_index(payload, name):
                self._entries.setdefault(blob_id, entry)
            self.index_names.add(name)


def write_index(backend, cipher: RepositoryCipher, packs: dict[str, list[PackEntry]],
                retention=None) -> str:
    """Store an index object for `packs` (locked with `retention`, if given); return its name
    (`index/<id>`)."""
    data = cipher.seal_envelope(ObjectType.INDEX, encode_index(packs))
    name = f"index/{hashlib.sha256(data).hexdigest()}"
    backend.put(name, data, **retention_arguments(retention))
    return name
