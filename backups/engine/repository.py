"""`Repository`: open/init a repository and the internals every operation builds on.

Operations live in their own modules (archiver = backup, restorer, browse, verify, prune);
this class owns the keys, the config, the index and the low-level object access they share.
Internals meant for verify.py / prune.py are documented as contracts below (section
"Internals"): they may rely on them, and on nothing else here.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import zstandard

from .backend import retention_arguments
from .crypto import RepositoryCipher
from .errors import (FormatError, DataIntegrityError, KeyInUse, KeyNotFound, LastKey,
                     ObjectNotFound, OrphanKey, RepositoryExists, RepositoryNotFound,
                     SnapshotNotFound, WrongKey)
from .format import BlobType, Compression, ObjectType
from .index import Index, IndexEntry, write_index
from .memory import tune_malloc
from .locking import repository_lock
from .keys import (KeyEncryptionKey, MasterKey, describe_key_object, load_key_encryption_key,
                   unwrap_master_key, wrap_master_key)
from .packer import PackEntry, blob_associated_data, pack_name, read_pack_entries
from .snapshot import SnapshotInfo, decode_snapshot, encode_snapshot
from .tree import MAX_TREE_BYTES, TREE_VERSIONS, TreeEntry, decode_tree

CONFIG_VERSION = 1
DEFAULT_CHUNKER = {"min_size": 512 * 1024, "avg_size": 1024 * 1024, "max_size": 8 * 1024 * 1024}
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
#: A data blob can never be bigger than the chunker's maximum; refusing larger claims keeps
#: a crafted index from making restore allocate or write absurd amounts.
MAX_BLOB_SIZE = 16 * 1024 * 1024
#: Trees grow with directory size (~150 bytes per entry): a million-file directory fits.
MAX_TREE_SIZE = MAX_TREE_BYTES
TREE_CACHE_SIZE = 512
TREE_PACK_CACHE_BYTES = 48 * 1024 * 1024
#: Decoded snapshot manifests kept per process (~1-2 KiB each), shared by every Repository
#: object of the same repository; see `_ManifestCache`.
MANIFEST_CACHE_SIZE = 10_000
#: Bytes of decrypted index payloads kept per process for `load_index` (50 bytes per blob:
#: 64 MiB covers about 1.3 million blobs, over a TB of data at 1 MiB chunks).
INDEX_PAYLOAD_CACHE_BYTES = 64 * 1024 * 1024
#: How long `Repository.init` queues behind another process's initialisation lock.
INIT_LOCK_WAIT_SECONDS = 60.0
#: How long a backup or restore waits for an exclusive lock to go before failing with the
#: transient `RepositoryLocked`: long enough for an initialisation finishing (a process
#: can open the config a moment before its creator releases the lock), short enough that
#: a job blocked by a long prune gives its worker back and is retried later.
SHARED_LOCK_WAIT_SECONDS = 10.0
LOCK_POLL_SECONDS = 0.2


@dataclass
class RepositoryStats:
    """Totals for `repo.stats()`."""

    snapshots: int
    packs: int
    blobs: int
    data_blobs: int
    tree_blobs: int
    stored_bytes: int        # sum of sealed blob sizes referenced by the index
    uncompressed_bytes: int  # sum of blob plaintext sizes
    repository_bytes: int    # bytes of every object under data/, index/, snapshots/, keys/

    def to_json(self) -> dict:
        return dict(self.__dict__)


class _ManifestCache:
    """Decoded, authenticated snapshot manifests, keyed by (repository id, snapshot id).

    Safe without invalidation: a manifest is immutable and its name is the SHA-256 of its
    stored bytes, so whatever is stored under that name later is the same manifest; the
    repository id (from the authenticated config) keeps two repositories apart. Deletion is
    seen because listings (`list_snapshot_ids`) always ask the storage; only listing-driven
    reads use the cache, while `load_snapshot` (verify, prune, lookups by id) always reads
    storage. Process-wide (the platform opens a fresh `Repository` per job around one
    backend), bounded (LRU), thread-safe; callers get copies they may mutate.
    """

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple[str, str], SnapshotInfo] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> SnapshotInfo | None:
        with self._lock:
            info = self._entries.get(key)
            if info is None:
                return None
            self._entries.move_to_end(key)
        return _copy_snapshot_info(info)

    def put(self, key: tuple[str, str], info: SnapshotInfo) -> None:
        info = _copy_snapshot_info(info)
        with self._lock:
            self._entries[key] = info
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _copy_snapshot_info(info: SnapshotInfo) -> SnapshotInfo:
    return dataclasses.replace(info, tags=list(info.tags), paths=list(info.paths),
                               stats=dict(info.stats), warnings=list(info.warnings),
                               metadata=copy.deepcopy(info.metadata))


_manifest_cache = _ManifestCache(MANIFEST_CACHE_SIZE)


class _IndexPayloadCache:
    """Authenticated index payloads, keyed by (repository id, index object name), bounded by
    their total size (LRU). Safe for the same reason as the manifest cache: an index object's
    name is the SHA-256 of its stored bytes. Used only by `load_index`, so that a process
    that opens the repository for every job does not read every index object again each
    time; that matters when index objects cannot be merged away because they are locked
    (S3 Object Lock keeps one per locked backup for the lock's duration). Verify and prune
    always read storage."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            payload = self._entries.get(key)
            if payload is not None:
                self._entries.move_to_end(key)
            return payload

    def put(self, key: tuple[str, str], payload: bytes) -> None:
        if len(payload) > self.max_bytes // 4:
            return  # one huge merged index would push everything else out
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = payload
            self._bytes += len(payload)
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


_index_payload_cache = _IndexPayloadCache(INDEX_PAYLOAD_CACHE_BYTES)


def forget_cached_manifests() -> None:
    """Empty every process-wide cache of repository objects: manifests, index payloads and
    loaded indexes, as in a new process (tests that count storage reads)."""
    _manifest_cache.clear()
    _index_payload_cache.clear()
    _shared_indexes.clear()


class _SharedIndexes:
    """The loaded index of each repository, shared by every `Repository` object of this
    process (keyed by the repository id from the authenticated config).

    The platform opens a fresh `Repository` per job. Without sharing, every job reads every
    index object again, and a backup of each of N volumes (one index object each) costs
    O(N^2) reads. Safe because index objects are immutable and named by the hash of their
    bytes: `load_index` adds only the objects it has not loaded yet, and rebuilds from
    scratch when one it loaded is gone (prune rewrote the index). Only true entries are ever
    added (loaded objects, and `write_index` after the packs are stored). Bounded: an index
    above `SHARED_INDEX_MAX_ENTRIES` blobs is not kept between jobs (its memory is worth
    more than the reads it saves on a repository that large).
    """

    def __init__(self) -> None:
        self._indexes: dict[str, Index] = {}
        self._lock = threading.Lock()

    def get(self, repository_id: str) -> Index | None:
        with self._lock:
            return self._indexes.get(repository_id)

    def put(self, repository_id: str, index: Index) -> None:
        with self._lock:
            if len(index) > SHARED_INDEX_MAX_ENTRIES:
                self._indexes.pop(repository_id, None)
            else:
                self._indexes[repository_id] = index

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()


#: About 250 bytes of memory per entry: 500,000 blobs (~500 GB of unique data at the 1 MiB
#: average chunk) is ~125 MB kept per worker process between jobs.
SHARED_INDEX_MAX_ENTRIES = 500_000
_shared_indexes = _SharedIndexes()


def forget_shared_indexes() -> None:
    """Drop the process-wide loaded indexes (tests that count storage reads)."""
    _shared_indexes.clear()


_thread_state = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    """One decompression context per thread: creating one per blob costs more than
    decompressing a small tree blob."""
    decompressor = getattr(_thread_state, "decompressor", None)
    if decompressor is None:
        decompressor = _thread_state.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def _lock(backend, exclusive: bool, holder: str, wait: float = 0.0):
    # Waits here are short (an initialisation, the tail of a lock release): poll often.
    return repository_lock(backend, exclusive=exclusive, holder=holder, wait=wait,
                           poll_interval=LOCK_POLL_SECONDS)


class Repository:
    """An opened repository. Thread-safe for the read paths; one backup at a time per object.

    Construct with `Repository.init` or `Repository.open`, never directly.
    """

    def __init__(self, backend, master: MasterKey, config: dict, key_name: str):
        self.backend = backend
        self.cipher = RepositoryCipher(master.data_key, master.id_key)
        self._master = master
        self.config = config
        self.key_name = key_name
        self._index: Index | None = None
        self._index_lock = threading.Lock()
        self._tree_cache: OrderedDict[bytes, list[TreeEntry]] = OrderedDict()
        self._tree_lock = threading.Lock()
        self._tree_packs: OrderedDict[str, bytes] = OrderedDict()
        #: {key object name: cipher} of key objects that unwrap with the secret but do not
        #: open the config (see `open`); verify names objects sealed with them.
        self.orphan_ciphers: dict[str, RepositoryCipher] = {}
        #: The config object's stored bytes when opened (callers that cache an opened
        #: repository compare them with storage to notice a replaced repository).
        self.sealed_config: bytes | None = None

    def __repr__(self) -> str:
        return f"Repository({getattr(self.backend, 'location', '')!r})"

    # --- lifecycle ----------------------------------------------------------------------------
    @classmethod
    def init(cls, backend, kek: KeyEncryptionKey | str | bytes, *,
             lock_wait: float = INIT_LOCK_WAIT_SECONDS,
             related_to: "Repository | None" = None) -> "Repository":
        """Create a new repository; `RepositoryExists` when one is already there.

        With `related_to`, the new repository holds that repository's master key (wrapped
        with `kek` in its own key object) and its chunker and pack settings, under its own
        config id: blob ids, trees and snapshot manifests then mean the same in both, which
        is what lets `copy` skip every blob the target has and keep snapshot ids (borg's
        `--other-repo`, restic's `--copy-chunker-params`, and the same key material). A
        replica made this way opens with `kek` only; whoever holds its key can read the
        source's data too, as with any copy of it.

        Safe when several processes initialise the same empty location at once (every
        worker of a fresh deployment does, on its first job): exactly one creates it and
        every other gets `RepositoryExists`, then opens what the winner wrote. Three layers,
        because a lost race here means two master keys and data nobody can read:
        the exclusive repository lock (so processes queue), the config written with
        `backend.create` (exclusive on local disk, `If-None-Match: *` on S3), and a read
        back of the config (for an S3 server that ignores the condition, and for a
        retried create whose first attempt succeeded unseen).
        """
        kek = load_key_encryption_key(kek)
        if backend.exists("config"):
            raise RepositoryExists(f"a repository already exists at {backend.location}")
        with _lock(backend, True, "init", wait=lock_wait):
            if backend.exists("config"):
                raise RepositoryExists(f"a repository already exists at {backend.location}")
            master = related_to._master if related_to is not None else MasterKey.generate()
            config = {"version": CONFIG_VERSION, "id": secrets.token_hex(16),
                      "created": dt.datetime.now(dt.timezone.utc).isoformat(),
                      "chunker": dict(DEFAULT_CHUNKER), "pack_size": DEFAULT_PACK_SIZE,
                      "blob_id": "hmac-sha256", "cipher": "aes-256-gcm", "compression": "zstd"}
            if related_to is not None:
                config["chunker"] = dict(related_to.config.get("chunker", DEFAULT_CHUNKER))
                config["pack_size"] = related_to.config.get("pack_size", DEFAULT_PACK_SIZE)
                config["related_to"] = related_to.config.get("id")
            key_object = wrap_master_key(master, kek)
            key_name = f"keys/{hashlib.sha256(key_object).hexdigest()}"
            # The key object first: whoever sees the config can then find its key.
            backend.put(key_name, key_object)
            cipher = RepositoryCipher(master.data_key, master.id_key)
            sealed = cipher.seal_envelope(ObjectType.CONFIG, json.dumps(config).encode())
            backend.create("config", sealed)
            if backend.get("config") != sealed:
                # Another process's config: ours was never the repository's. Our key
                # object wraps a master key that opens nothing; remove it.
                backend.delete(key_name)
                raise RepositoryExists(f"a repository already exists at {backend.location}")
        repository = cls(backend, master, config, key_name)
        repository.sealed_config = sealed
        return repository

    @classmethod
    def open(cls, backend, kek: KeyEncryptionKey | str | bytes) -> "Repository":
        """Open with any of the repository's wrapped keys.

        `RepositoryNotFound` when there is no repository, `WrongKey` when no key object
        opens with this secret, `FormatError` for an unsupported format.

        A key object can unwrap with the secret and still not open the config: a process
        that lost a concurrent initialisation under an older version of this code wrote
        one. Such keys are skipped here, and kept in `orphan_ciphers` so that verify can
        name objects sealed with them.
        """
        kek = load_key_encryption_key(kek)
        if not backend.exists("config"):
            raise RepositoryNotFound(f"no repository at {backend.location}")
        sealed_config = backend.get("config")
        opened, orphans = None, {}
        for name in sorted(backend.list("keys/")):
            try:
                master = unwrap_master_key(backend.get(name), kek, name)
            except (WrongKey, FormatError, ObjectNotFound):
                continue
            cipher = RepositoryCipher(master.data_key, master.id_key)
            try:
                plain = cipher.open_envelope(sealed_config, ObjectType.CONFIG, "config")
            except DataIntegrityError:
                orphans[name] = cipher
                continue
            if opened is None:
                opened = (master, name, plain)
        if opened is None:
            if orphans:
                raise DataIntegrityError(
                    "config: no key object that opens with this secret authenticates the "
                    "config (damaged config, or every key is an orphan)")
            raise WrongKey()
        master, key_name, plain = opened
        config = json.loads(plain)
        if config.get("version") != CONFIG_VERSION:
            raise FormatError(f"config: unsupported repository version {config.get('version')!r}")
        repository = cls(backend, master, config, key_name)
        repository.orphan_ciphers = orphans
        repository.sealed_config = sealed_config
        return repository

    def is_related(self, other: "Repository") -> bool:
        """True when both repositories hold the same master key (see `init`'s `related_to`):
        their blob and snapshot ids are interchangeable."""
        return (hmac.compare_digest(self._master.id_key, other._master.id_key)
                and hmac.compare_digest(self._master.data_key, other._master.data_key))

    def clone(self) -> "Repository":
        """A fresh object for the same opened repository: same backend and keys (no key
        derivation), empty index and tree caches. For callers that keep one opened
        repository per process and hand each job its own view of storage."""
        copy = type(self)(self.backend, self._master, self.config, self.key_name)
        copy.orphan_ciphers = dict(self.orphan_ciphers)
        copy.sealed_config = self.sealed_config
        return copy

    def close(self) -> None:
        """Release the backend. The repository must not be used afterwards."""
        self.backend.close()

    # --- keys ---------------------------------------------------------------------------------
    def add_key(self, kek: KeyEncryptionKey | str | bytes) -> str:
        """Wrap the master key under another secret; return the new `keys/<id>` name.

        One object is written; no data is rewritten. The new key opens the repository as
        soon as the write returns."""
        key_object = wrap_master_key(self._master, load_key_encryption_key(kek))
        name = f"keys/{hashlib.sha256(key_object).hexdigest()}"
        self.backend.put(name, key_object)
        return name

    def list_keys(self) -> list[dict]:
        """[{name, kdf, created, current, orphan}] for every key object, sorted by name.

        `current`: the key this object was opened with. `orphan`: a key that unwraps with
        the same secret but does not open the config (see `open`); a key wrapped under
        another secret is never known to be an orphan here."""
        keys = []
        for name in sorted(self.backend.list("keys/")):
            description = describe_key_object(self.backend.get(name), name)
            keys.append({"name": name, **description, "current": name == self.key_name,
                         "orphan": name in self.orphan_ciphers})
        return keys

    def remove_key(self, name: str) -> None:
        """Delete one wrapped copy (rotation: add the new secret, open with it, remove the old).

        Refuses, in this order: an unknown name (`KeyNotFound`), the last key (`LastKey`),
        the key this object was opened with (`KeyInUse`: whoever removes it must already hold
        another secret that opens the repository), and an orphan key (`OrphanKey`: removing it
        alone would leave what it sealed unreadable and unfindable; see orphans.py).
        """
        names = set(self.backend.list("keys/"))
        if name not in names:
            raise KeyNotFound(f"no key object {name}", detail={"key": name})
        if len(names) == 1:
            raise LastKey("refusing to remove the repository's last key", detail={"key": name})
        if name == self.key_name:
            raise KeyInUse(f"refusing to remove {name}: the repository was opened with it; open "
                           "it with another key to remove this one", detail={"key": name})
        if name in self.orphan_ciphers:
            raise OrphanKey(f"refusing to remove the orphan key {name} alone: repair-orphans "
                            "removes it together with the objects it sealed", detail={"key": name})
        self.backend.delete(name)

    # --- Internals (contract for verify.py / prune.py) ------------------------------------------
    @property
    def index(self) -> Index:
        """The union of all index objects, loaded on first use (see `load_index`)."""
        if self._index is None:
            self.load_index()
        return self._index

    def load_index(self, reload: bool = False) -> Index:
        """(Re)load every `index/*` object. Raises `DataIntegrityError`/`FormatError` on damage.

        A reload reads only index objects that are new since the last load: they are
        immutable (named by the hash of their bytes), so the ones already loaded cannot have
        changed. When one of them is gone (prune rewrote the index), everything is reloaded.
        A first load starts from what another `Repository` object of this process loaded
        for the same repository (`_SharedIndexes`), under the same rules, and an object this
        process already authenticated is not read again (`_IndexPayloadCache`): a rebuild after
        a prune then reads only what is new, which matters when locked index objects pile up."""
        with self._index_lock:
            if self._index is None or reload:
                names = self.list_index_names()
                repository_id = str(self.config.get("id", ""))
                index = self._index if self._index is not None else _shared_indexes.get(repository_id)
                if index is None or not index.index_names.issubset(names):
                    index = Index()
                for name in names:
                    if name not in index.index_names:
                        index.load(name, self._cached_index_payload(name))
                self._index = index
                _shared_indexes.put(repository_id, index)
        return self._index

    def replace_index(self, index: Index) -> None:
        """Read through `index` from now on instead of the one `load_index` builds.

        For verify and prune, which read every index object themselves (verify goes on past
        a damaged one; prune must see what other processes wrote since this object was
        opened). The tree and pack caches are dropped too: what they hold was found through
        the previous index, and packs it named may have been rewritten since."""
        with self._index_lock:
            self._index = index
        with self._tree_lock:
            self._tree_cache.clear()
            self._tree_packs.clear()

    def list_index_names(self) -> list[str]:
        """Names (`index/<id>`) of every index object."""
        return sorted(self.backend.list("index/"))

    def _cached_index_payload(self, name: str) -> bytes:
        key = (str(self.config.get("id", "")), name)
        payload = _index_payload_cache.get(key)
        if payload is None:
            data = self.backend.get(name)
            payload = self.cipher.open_envelope(data, ObjectType.INDEX, name)
            if f"index/{hashlib.sha256(data).hexdigest()}" == name:
                _index_payload_cache.put(key, payload)
        return payload

    def read_index_payload(self, name: str) -> bytes:
        """Authenticated payload of one index object (decode with `index.decode_index`)."""
        return self.cipher.open_envelope(self.backend.get(name), ObjectType.INDEX, name)

    def write_index(self, packs: dict[str, list[PackEntry]], retention=None) -> str:
        """Store a new index object for `packs` (pack id -> entries), locked with `retention`
        if given; return its name. The in-memory index learns the entries too."""
        name = write_index(self.backend, self.cipher, packs, retention)
        for pack_id, entries in packs.items():
            self.index.add_pack(pack_id, entries)
        self.index.index_names.add(name)
        return name

    def list_packs(self) -> dict[str, str]:
        """{pack id: backend name} of every pack object in storage."""
        packs = {}
        for name in self.backend.list("data/"):
            pack_id = name.rsplit("/", 1)[-1]
            packs[pack_id] = name
        return packs

    def pack_entries(self, pack_id: str) -> list[PackEntry]:
        """The blobs listed in a pack's own trailer (authenticated)."""
        return read_pack_entries(self.backend, self.cipher, pack_id)

    def open_blob(self, blob_id: bytes, entry: IndexEntry, sealed: bytes | memoryview,
                  verify_id: bool = True) -> bytes:
        """Authenticate, decompress and id-check one sealed blob record.

        `DataIntegrityError` when GCM fails, the plaintext is not `raw_length` bytes, or its
        keyed hash is not `blob_id`; `FormatError` for an unknown compression.
        `verify_id=False` skips only the keyed-hash recomputation (GCM, whose associated
        data is the blob id, still proves the record was sealed for this id by a key
        holder); restore and verify always check it.
        """
        what = f"blob {blob_id.hex()[:16]} in pack {entry.pack_id[:16]}"
        limit = MAX_TREE_SIZE if entry.blob_type == BlobType.TREE else MAX_BLOB_SIZE
        if entry.raw_length > limit:
            raise FormatError(f"{what}: claims {entry.raw_length} bytes, above the blob limit")
        plain = self.cipher.open(sealed, blob_associated_data(blob_id, entry.blob_type,
                                                              entry.compression), what)
        if entry.compression == Compression.ZSTD:
            try:
                plain = _decompressor().decompress(plain, max_output_size=entry.raw_length)
            except zstandard.ZstdError:
                raise DataIntegrityError(f"{what}: does not decompress") from None
        elif entry.compression != Compression.RAW:
            raise FormatError(f"{what}: unknown compression {entry.compression}")
        if len(plain) != entry.raw_length:
            raise DataIntegrityError(f"{what}: wrong plaintext length")
        if verify_id and self.cipher.blob_id(plain) != blob_id:
            raise DataIntegrityError(f"{what}: content does not match its id")
        return plain

    def read_blob(self, blob_id: bytes, blob_type: int | None = None,
                  verify_id: bool = True) -> bytes:
        """Read, authenticate and return one blob's plaintext.

        `DataIntegrityError` when it is not in the index or fails any check (see `open_blob`).
        """
        entry = self.index.get(blob_id)
        if entry is None:
            raise DataIntegrityError(f"blob {blob_id.hex()[:16]} is not in the index")
        if blob_type is not None and entry.blob_type != blob_type:
            raise DataIntegrityError(f"blob {blob_id.hex()[:16]} has the wrong type")
        if entry.blob_type == BlobType.TREE:
            pack = self._tree_pack(entry.pack_id)
            if pack is not None and entry.offset + entry.length <= len(pack):
                sealed = memoryview(pack)[entry.offset: entry.offset + entry.length]
                return self.open_blob(blob_id, entry, sealed, verify_id)
        sealed = self.backend.get(pack_name(entry.pack_id), entry.offset, entry.length)
        return self.open_blob(blob_id, entry, sealed, verify_id)

    def _tree_pack(self, pack_id: str) -> bytes | None:
        """A whole tree pack from a small LRU cache, or None when it is too big to cache.

        Walking a snapshot reads thousands of small tree blobs that the backup packed
        together; one read per pack instead of one per tree makes incremental backups and
        restores of many-directory trees several times faster (and S3 cheaper).
        """
        with self._tree_lock:
            pack = self._tree_packs.get(pack_id)
            if pack is not None:
                self._tree_packs.move_to_end(pack_id)
                return pack
        name = pack_name(pack_id)
        if self.backend.size(name) > TREE_PACK_CACHE_BYTES // 2:
            return None
        pack = self.backend.get(name)
        with self._tree_lock:
            self._tree_packs[pack_id] = pack
            while sum(len(p) for p in self._tree_packs.values()) > TREE_PACK_CACHE_BYTES:
                self._tree_packs.popitem(last=False)
        return pack

    def read_tree(self, tree_id: bytes) -> list[TreeEntry]:
        """The validated entries of a tree blob (LRU-cached; treat the list as read-only)."""
        with self._tree_lock:
            cached = self._tree_cache.get(tree_id)
            if cached is not None:
                self._tree_cache.move_to_end(tree_id)
                return cached
        entries = decode_tree(self.read_blob(tree_id, BlobType.TREE))
        with self._tree_lock:
            self._tree_cache[tree_id] = entries
            while len(self._tree_cache) > TREE_CACHE_SIZE:
                self._tree_cache.popitem(last=False)
        return entries

    def read_tree_entries_raw(self, tree_id: bytes) -> list[dict]:
        """A tree's entries as parsed JSON, authenticated by GCM but not validated entry by
        entry (no TreeEntry objects). For comparisons with a parent snapshot during backup
        only, where it halves the per-directory cost; never for restoring.
        `FormatError` on an unknown tree version."""
        document = json.loads(self.read_blob(tree_id, BlobType.TREE, verify_id=False))
        if not isinstance(document, dict) or document.get("version") not in TREE_VERSIONS:
            raise FormatError("tree blob has an unsupported version")
        entries = document.get("entries")
        if not isinstance(entries, list):
            raise FormatError("tree blob has no entry list")
        return entries

    def list_snapshot_ids(self) -> list[str]:
        """Ids of every `snapshots/<id>` object."""
        return sorted(name.rsplit("/", 1)[-1] for name in self.backend.list("snapshots/"))

    def load_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        """One manifest, read from storage and authenticated; `SnapshotNotFound` when missing.
        Never answered from the manifest cache (verify and prune must see the stored bytes),
        but what it reads is cached for listings."""
        name = f"snapshots/{snapshot_id}"
        try:
            data = self.backend.get(name)
        except ObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {snapshot_id}") from None
        info = decode_snapshot(snapshot_id, self.cipher.open_envelope(
            data, ObjectType.SNAPSHOT, name))
        if hashlib.sha256(data).hexdigest() == snapshot_id:
            _manifest_cache.put(self._manifest_key(snapshot_id), info)
        return info

    def _manifest_key(self, snapshot_id: str) -> tuple[str, str]:
        return str(self.config.get("id", "")), snapshot_id

    def iter_snapshots(self) -> Iterator[SnapshotInfo]:
        """Every snapshot (unordered). A manifest deleted meanwhile is skipped.

        The names come from a fresh listing; manifests already decoded in this process are
        taken from the manifest cache (see `_ManifestCache`), so listing is one
        `backend.list` plus a read of each manifest this process has not seen yet.
        """
        for snapshot_id in self.list_snapshot_ids():
            cached = _manifest_cache.get(self._manifest_key(snapshot_id))
            if cached is not None:
                yield cached
                continue
            try:
                yield self.load_snapshot(snapshot_id)
            except SnapshotNotFound:
                continue

    def write_snapshot(self, info: SnapshotInfo, retention=None) -> str:
        """Store a manifest (the commit point), locked with `retention` if given; return its
        id and set `info.id`."""
        data = self.cipher.seal_envelope(ObjectType.SNAPSHOT, encode_snapshot(info))
        info.id = hashlib.sha256(data).hexdigest()
        self.backend.put(f"snapshots/{info.id}", data, **retention_arguments(retention))
        # Cached as a reader would decode it, not as the caller's object.
        _manifest_cache.put(self._manifest_key(info.id),
                            decode_snapshot(info.id, encode_snapshot(info)))
        return info.id

    def write_snapshot_copy(self, source: "Repository", snapshot_id: str, retention=None) -> str:
        """Store `source`'s manifest `snapshot_id` byte for byte (a related repository's: the
        same key authenticates it here, and the id stays), locked with `retention` if given.
        Read and authenticated first, so a damaged manifest is never copied; returns the id."""
        name = f"snapshots/{snapshot_id}"
        try:
            data = source.backend.get(name)
        except ObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {snapshot_id}") from None
        if hashlib.sha256(data).hexdigest() != snapshot_id:
            raise DataIntegrityError(f"{name}: content does not match its id")
        info = decode_snapshot(snapshot_id, self.cipher.open_envelope(data, ObjectType.SNAPSHOT, name))
        self.backend.put(name, data, **retention_arguments(retention))
        _manifest_cache.put(self._manifest_key(snapshot_id), info)
        return snapshot_id

    def delete_objects(self, names: Iterable[str]) -> int:
        """Delete storage objects by name (missing ones are fine); return how many."""
        count = 0
        for name in names:
            self.backend.delete(name)
            count += 1
        return count

    def lock(self, *, exclusive: bool, holder: str, wait: float = 0.0):
        """The repository lock context manager (shared for backup/restore, exclusive prune)."""
        return _lock(self.backend, exclusive, holder, wait)

    # --- snapshots ----------------------------------------------------------------------------
    def snapshots(self, source: str | None = None, tags: Iterable[str] | None = None
                  ) -> list[SnapshotInfo]:
        """Snapshots, oldest first, optionally only those of `source` carrying all `tags`."""
        wanted = set(tags or ())
        found = [info for info in self.iter_snapshots()
                 if (source is None or info.source == source) and wanted <= set(info.tags)]
        return sorted(found, key=lambda info: (info.time, info.id))

    def resolve_snapshot(self, reference: str, source: str | None = None) -> SnapshotInfo:
        """A snapshot by full id, unique id prefix (>= 4 hex digits) or "latest"."""
        if reference == "latest":
            found = self.snapshots(source=source)
            if not found:
                raise SnapshotNotFound("the repository has no snapshot yet")
            return found[-1]
        reference = reference.strip().lower()
        if len(reference) == 64:
            return self.load_snapshot(reference)
        if len(reference) < 4 or any(c not in "0123456789abcdef" for c in reference):
            raise SnapshotNotFound(f"no snapshot {reference!r}")
        matches = [sid for sid in self.list_snapshot_ids() if sid.startswith(reference)]
        if len(matches) != 1:
            raise SnapshotNotFound(f"no snapshot {reference!r}" if not matches else
                                   f"snapshot prefix {reference!r} is ambiguous")
        return self.load_snapshot(matches[0])

    # --- operations (thin delegations) -----------------------------------------------------------
    def backup(self, source_dir, *, source: str | None = None, tags: Iterable[str] = (),
               parent: str | None = "auto", progress=None, cancel=None, hostname=None,
               metadata: dict | None = None, retention=None):
        """Back up `source_dir` (locked with `retention`, an `objectlock.Retention`, if given);
        see `archiver.backup`."""
        from .archiver import backup
        tune_malloc()
        with self.lock(exclusive=False, holder=f"backup {source or source_dir}",
                       wait=SHARED_LOCK_WAIT_SECONDS):
            return backup(self, source_dir, source=source, tags=tags, parent=parent,
                          progress=progress, cancel=cancel, hostname=hostname, metadata=metadata,
                          retention=retention)

    def restore(self, snapshot: str, target_dir, sub_path: str | None = None, *,
                progress=None, cancel=None):
        """Restore a snapshot (or `sub_path` of it) into `target_dir`; see `restorer.restore`."""
        from .restorer import restore
        tune_malloc()
        with self.lock(exclusive=False, holder=f"restore {snapshot}",
                       wait=SHARED_LOCK_WAIT_SECONDS):
            return restore(self, snapshot, target_dir, sub_path=sub_path, progress=progress,
                           cancel=cancel)

    def drill(self, snapshot: str, scratch_dir, *, progress=None, cancel=None):
        """Restore a snapshot into `scratch_dir` (which must not exist), check every entry
        against the snapshot and remove the directory again; see `drill.drill`. One shared
        lock covers the restore and the check, so a prune cannot remove trees in between."""
        from .drill import drill
        tune_malloc()
        with self.lock(exclusive=False, holder=f"drill {snapshot}", wait=SHARED_LOCK_WAIT_SECONDS):
            return drill(self, snapshot, scratch_dir, progress=progress, cancel=cancel)

    def list_dir(self, snapshot: str, path: str = "/") -> list[TreeEntry]:
        from .browse import list_dir
        return list_dir(self, snapshot, path)

    def open_file(self, snapshot: str, path: str) -> Iterator[bytes]:
        from .browse import open_file
        return open_file(self, snapshot, path)

    def copy_to(self, target: "Repository", snapshot_ids: Iterable[str] | None = None, *,
                progress=None, cancel=None, retention=None):
        """Copy snapshots that `target` lacks into it, locked in the target with `retention`
        (an `objectlock.Retention`) if given; see `copy.copy_snapshots`. Shared locks on both,
        as a backup takes: a prune of either waits."""
        from .copy import copy_snapshots
        tune_malloc()
        with self.lock(exclusive=False, holder=f"copy to {target.backend.location}",
                       wait=SHARED_LOCK_WAIT_SECONDS), \
                target.lock(exclusive=False, holder=f"copy from {self.backend.location}",
                            wait=SHARED_LOCK_WAIT_SECONDS):
            return copy_snapshots(self, target, snapshot_ids, progress=progress, cancel=cancel,
                                  retention=retention)

    def verify(self, read_data_percent: float = 0.0, progress=None):
        """Structural (+ data) check; see verify.py."""
        from . import verify
        return verify.verify_repository(self, read_data_percent=read_data_percent, progress=progress)

    def forget(self, policy, source: str | None = None, dry_run: bool = False, now=None, keep=None):
        """Apply a retention policy to snapshot manifests, keeping `keep` ({id: reason}) too;
        see prune.py."""
        from . import prune
        return prune.forget_snapshots(self, policy, source=source, dry_run=dry_run, now=now, keep=keep)

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove one snapshot manifest (its data goes at the next prune); see prune.py."""
        from . import prune
        return prune.delete_snapshot(self, snapshot_id)

    def prune(self, dry_run: bool = False, progress=None):
        """Remove unreferenced data; see prune.py."""
        from . import prune
        return prune.prune_repository(self, dry_run=dry_run, progress=progress)

    def stats(self) -> RepositoryStats:
        """Counts and sizes from the index and a storage listing."""
        index = self.load_index(reload=True)
        data_blobs = tree_blobs = stored = uncompressed = 0
        for _blob_id, entry in index.items():
            stored += entry.length
            uncompressed += entry.raw_length
            if entry.blob_type == BlobType.TREE:
                tree_blobs += 1
            else:
                data_blobs += 1
        repository_bytes = 0
        packs = 0
        for prefix in ("data/", "index/", "snapshots/", "keys/"):
            for name in self.backend.list(prefix):
                repository_bytes += self.backend.size(name)
                packs += prefix == "data/"
        return RepositoryStats(snapshots=len(self.list_snapshot_ids()), packs=packs,
                               blobs=len(index), data_blobs=data_blobs, tree_blobs=tree_blobs,
                               stored_bytes=stored, uncompressed_bytes=uncompressed,
                               repository_bytes=repository_bytes)
