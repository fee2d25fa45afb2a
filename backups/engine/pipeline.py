"""The blob pipeline of a backup: plaintext chunks in, stored packs out.

Worker threads hash each chunk (HMAC-SHA256 id), skip it when the index or another task
already has it (dedup), compress (zstd 3, raw when not smaller; a chunk whose samples do not
compress is stored raw without trying the whole), encrypt (AES-256-GCM) and
append it to the open pack, a spool file (`backend.spool()`); full packs go to upload
threads (trailer, `backend.put_spool`). zstd, HMAC and AES-GCM release the GIL, so the workers use both cores.

Bounded: at most `IN_FLIGHT_BYTES` of plaintext queued for the workers (`submit` blocks),
at most `UPLOAD_SLOTS` finished packs waiting for storage (a worker that fills a pack
blocks), so memory and spool space stay flat for any input: packs live in spool files,
not in memory (see `PackSpool`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import zstandard

from .backend import retention_arguments
from .format import BlobType, Compression
from .memory import trim_if_above
from .packer import PackSpool, blob_associated_data, pack_name

IN_FLIGHT_BYTES = 16 * 1024 * 1024
UPLOAD_SLOTS = 2
#: Two uploads at once: finishing a pack (SHA-256) and an fsync overlap instead of queueing.
UPLOAD_THREADS = 2
WORKERS = max(2, min(4, os.cpu_count() or 2))
#: After each stored pack, freed heap memory goes back to the OS if RSS is above this (see
#: memory.py): with chunk buffers mapped and unmapped one by one this rarely triggers; it
#: stays as a bound for what the heap keeps of smaller allocations.
TRIM_ABOVE_BYTES = 160 * 1024 * 1024
#: Compression trial: chunks of at least TRIAL_MIN bytes are sampled first (TRIAL_SAMPLES
#: pieces of TRIAL_SAMPLE bytes spread over the chunk); when no sample shrinks below
#: TRIAL_RATIO of its size, the chunk is stored raw without compressing it whole. Random data
#: (media, archives, encrypted files) then costs 64 KiB of zstd per chunk instead of all of it.
TRIAL_MIN = 256 * 1024
TRIAL_SAMPLE = 16 * 1024
TRIAL_SAMPLES = 4
TRIAL_RATIO = 0.97


class Batch:
    """Chunks submitted together to one worker task; resolves to their ids in order."""

    __slots__ = ("chunks", "size", "future")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.future: Future | None = None


class BlobPipeline:
    """Workers that turn plaintext into stored blobs, deduplicating against the index."""

    def __init__(self, repo, stats: dict, retention=None):
        self.repo = repo
        self.retention = retention  # Object Lock of every pack written (None: unlocked)
        self.cipher = repo.cipher
        self.stats = stats
        self.pack_size = int(repo.config.get("pack_size", 16 * 1024 * 1024))
        self.lock = threading.Lock()
        self.index = repo.index
        self.pending_ids: set[bytes] = set()
        self.packs = {BlobType.DATA: self._new_pack(), BlobType.TREE: self._new_pack()}
        self.written: dict[str, list] = {}
        self.written_sizes: dict[str, int] = {}  # pack id -> bytes stored (BackupResult.packs)
        self.workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="backup-worker")
        self.uploader = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="backup-upload")
        self.upload_slots = threading.Semaphore(UPLOAD_SLOTS)
        self.upload_futures: list[Future] = []
        self.tasks: list[Future] = []  # every worker task: flush waits for all of them
        self.in_flight = 0
        self.in_flight_changed = threading.Condition()
        self.local = threading.local()
        self.failed: BaseException | None = None

    def _new_pack(self) -> PackSpool:
        return PackSpool(self.repo.backend.spool)

    # -- submission (main thread) ---------------------------------------------------------------
    def submit(self, batch: Batch) -> None:
        with self.in_flight_changed:
            while self.in_flight > 0 and self.in_flight + batch.size > IN_FLIGHT_BYTES:
                self.in_flight_changed.wait(0.5)
                if self.failed:
                    break
            self.in_flight += batch.size
        batch.future = self.workers.submit(self._process, batch.chunks, BlobType.DATA)
        self.tasks.append(batch.future)
        # Pending directories keep their batches until their tree is written: drop the
        # plaintext reference here so only the worker holds it, or memory grows with
        # directory size.
        batch.chunks = None
        size = batch.size
        batch.future.add_done_callback(lambda _f: self._release(size))

    def _release(self, size: int) -> None:
        with self.in_flight_changed:
            self.in_flight -= size
            self.in_flight_changed.notify_all()

    def store_tree(self, plaintext: bytes) -> bytes:
        """Store a tree blob synchronously (small); return its id."""
        return self._process([plaintext], BlobType.TREE)[0]

    # -- worker side ----------------------------------------------------------------------------
    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor = getattr(self.local, "compressor", None)
        if compressor is None:
            compressor = self.local.compressor = zstandard.ZstdCompressor(level=3)
        return compressor

    def _process(self, chunks: list[bytes], blob_type: BlobType) -> list[bytes]:
        try:
            ids = []
            for data in chunks:
                blob_id = self.cipher.blob_id(data)
                with self.lock:
                    new = blob_id not in self.pending_ids and blob_id not in self.index
                    if new:
                        self.pending_ids.add(blob_id)
                if new:
                    self._store(blob_id, blob_type, data)
                ids.append(blob_id)
            return ids
        except BaseException as error:
            self.failed = error
            raise

    def _seal_buffer(self, size: int) -> bytearray:
        buffer = getattr(self.local, "seal_buffer", None)
        if buffer is None or len(buffer) < size:
            buffer = self.local.seal_buffer = bytearray(size)
        return buffer

    def _incompressible(self, data: bytes) -> bool:
        """True when every sample of a large chunk stays at TRIAL_RATIO or more of its size."""
        if len(data) < TRIAL_MIN:
            return False
        view, step, compressor = memoryview(data), len(data) // TRIAL_SAMPLES, self._compressor()
        for number in range(TRIAL_SAMPLES):
            sample = view[number * step: number * step + TRIAL_SAMPLE]
            if len(compressor.compress(sample)) < len(sample) * TRIAL_RATIO:
                return False
        return True

    def _store(self, blob_id: bytes, blob_type: BlobType, data: bytes) -> None:
        compressed = data if self._incompressible(data) else self._compressor().compress(data)
        if len(compressed) < len(data):
            payload, compression = compressed, Compression.ZSTD
        else:
            payload, compression = data, Compression.RAW
        # Sealed into this thread's reusable buffer: the pack spool copies it out under the
        # lock below, so no fresh 1 MiB allocation per chunk (fewer pages to fault and trim).
        associated = blob_associated_data(blob_id, blob_type, compression)
        sealed = self.cipher.seal_into(payload, associated,
                                       self._seal_buffer(self.cipher.sealed_size(len(payload))))
        full = None
        with self.lock:
            builder = self.packs[blob_type]
            builder.add(blob_id, blob_type, compression, sealed, len(data))
            self.stats["blobs_new"] += 1
            self.stats["bytes_new"] += len(data)
            self.stats["bytes_stored"] += len(sealed)
            if builder.size >= self.pack_size:
                full = builder
                self.packs[blob_type] = self._new_pack()
        if full is not None:
            self._upload(full)

    def _upload(self, builder: PackSpool) -> None:
        # Back-pressure: a worker that fills a pack waits for an upload slot, so at most
        # UPLOAD_SLOTS finished packs sit in memory.
        self.upload_slots.acquire()
        future = self.uploader.submit(self._write_pack, builder)
        future.add_done_callback(lambda _f: self.upload_slots.release())
        with self.lock:
            self.upload_futures.append(future)

    def _write_pack(self, builder: PackSpool) -> None:
        try:
            pack_id, entries = builder.finish(self.cipher)
            size = builder.size
            self.repo.backend.put_spool(pack_name(pack_id), builder.spool,
                                        **retention_arguments(self.retention))
        finally:
            builder.close()
        with self.lock:
            self.written[pack_id] = entries
            self.written_sizes[pack_id] = size
            self.stats["packs_written"] += 1
        trim_if_above(TRIM_ABOVE_BYTES)

    # -- completion ----------------------------------------------------------------------------
    def flush(self) -> dict[str, list]:
        """Upload the partly filled packs, wait for every upload; {pack id: entries}.

        First every worker task must be done, even one whose result nobody uses: a task
        that claimed a blob id (so others deduplicated against it) may still be adding
        that blob to a pack.
        """
        for future in list(self.tasks):
            future.result()
        for blob_type in (BlobType.DATA, BlobType.TREE):
            builder = self.packs[blob_type]
            if builder.entries:
                self.packs[blob_type] = self._new_pack()
                self._upload(builder)
        for future in list(self.upload_futures):
            future.result()
        return self.written

    def shutdown(self) -> None:
        self.workers.shutdown(wait=True, cancel_futures=True)
        self.uploader.shutdown(wait=True, cancel_futures=True)
        for builder in self.packs.values():  # unfinished packs of a failed or cancelled backup
            builder.close()
