"""Index reloads read only new index objects; incompressible chunks skip compression."""

from __future__ import annotations

import os
import random

from backups import engine
from backups.engine.format import Compression
from backups.engine.repository import forget_cached_manifests, forget_shared_indexes

from .helpers import KEY


class CountingBackend(engine.LocalBackend):
    """A real local backend that counts the index objects it is asked for."""

    index_reads = 0

    def get(self, name, *args, **kwargs):
        if name.startswith("index/"):
            self.index_reads += 1
        return super().get(name, *args, **kwargs)


def three_backups(tmp_path):
    """(counting backend, repository, source) after three backups: three index objects."""
    source = tmp_path / "source"
    source.mkdir()
    backend = CountingBackend(str(tmp_path / "repo"))
    repo = engine.Repository.init(backend, KEY)
    for number in range(3):
        (source / f"f{number}").write_bytes(os.urandom(1000))
        repo.backup(source)
    return backend, repo, source


def test_reload_reads_only_new_index_objects_and_rebuilds_after_removal(tmp_path):
    backend, repo, source = three_backups(tmp_path)
    assert len(repo.list_index_names()) == 3

    forget_shared_indexes()  # `other` starts with nothing loaded, as another process would
    other = engine.Repository.open(engine.LocalBackend(str(tmp_path / "repo")), KEY)
    (source / "f3").write_bytes(os.urandom(1000))
    other.backup(source)  # another process adds a fourth index object
    backend.index_reads = 0
    index = repo.load_index(reload=True)
    assert backend.index_reads == 1  # the new one only
    assert len(index.index_names) == 4

    removed = sorted(index.index_names)[0]
    backend.delete(removed)  # as prune does when it rewrites the index
    backend.index_reads = 0
    index = repo.load_index(reload=True)
    # rebuilt from the payloads this process already authenticated: no storage read
    assert backend.index_reads == 0 and removed not in index.index_names
    assert len(index.index_names) == 3

    forget_cached_manifests()  # a new process: everything is read from storage
    index = engine.Repository.open(backend, KEY).load_index()
    assert backend.index_reads == 3 and removed not in index.index_names


def test_a_fresh_repository_object_loads_the_index_without_reading_storage_again(tmp_path):
    """The platform opens a new Repository per job; index objects that cannot be merged away
    (S3 Object Lock keeps one per locked backup) must not be read again for every job."""
    backend, _repo, _source = three_backups(tmp_path)
    forget_cached_manifests()
    forget_shared_indexes()
    engine.Repository.open(backend, KEY).load_index()
    backend.index_reads = 0
    assert len(engine.Repository.open(backend, KEY).load_index().index_names) == 3
    assert backend.index_reads == 0


def test_a_new_repository_object_starts_from_the_index_this_process_loaded(tmp_path):
    """What the platform does once per job: open (clone) the repository and back up. Only the
    index objects written since the last job are read, not every one again."""
    forget_shared_indexes()
    source = tmp_path / "source"
    source.mkdir()
    backend = CountingBackend(str(tmp_path / "repo"))
    template = engine.Repository.init(backend, KEY)
    for number in range(5):
        (source / f"f{number}").write_bytes(os.urandom(1000))
        job_repository = template.clone()
        job_repository.backup(source)
    assert len(template.list_index_names()) == 5
    # Five jobs read nothing but what they wrote: each started from the previous job's index.
    assert backend.index_reads == 0

    # An index object another process wrote is read once; a pruned one forces a rebuild.
    forget_shared_indexes()
    elsewhere = engine.Repository.open(engine.LocalBackend(str(tmp_path / "repo")), KEY)
    (source / "f5").write_bytes(os.urandom(1000))
    elsewhere.backup(source)
    forget_shared_indexes()
    template.clone().load_index()
    backend.index_reads = 0
    elsewhere.backend.delete(sorted(template.list_index_names())[0])
    (source / "f6").write_bytes(os.urandom(1000))
    template.clone().backup(source)
    # Rebuilt without a read: the remaining objects' authenticated payloads were kept by this
    # process (index objects are immutable), only the loaded union had to be built again.
    assert backend.index_reads == 0
    forget_cached_manifests()  # without the kept payloads, every remaining object is read
    forget_shared_indexes()
    template.clone().load_index()
    assert backend.index_reads == len(template.list_index_names()) == 6


def test_incompressible_chunks_are_stored_raw_and_text_compressed(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    rng = random.Random(7)
    (source / "random.bin").write_bytes(rng.randbytes(3 << 20))
    (source / "text.log").write_bytes(b"GET /index.html 200 1234\n" * 120_000)
    # Random except one compressible quarter: a sample lands in it, so it is compressed.
    mixed = bytearray(rng.randbytes(2 << 20))
    mixed[len(mixed) // 4: len(mixed) // 2] = b"a" * (len(mixed) // 4)
    (source / "mixed.bin").write_bytes(bytes(mixed))
    repo = engine.Repository.init(engine.LocalBackend(str(tmp_path / "repo")), KEY)
    snapshot = repo.backup(source).snapshot_id
    entries = {entry.name: entry for entry in repo.read_tree(
        bytes.fromhex(repo.load_snapshot(snapshot).tree))}

    def compressions(name):
        return {repo.index.get(blob_id).compression for blob_id in entries[name].content}

    assert compressions("random.bin") == {Compression.RAW}
    assert compressions("text.log") == {Compression.ZSTD}
    assert Compression.ZSTD in compressions("mixed.bin")
    repo.restore(snapshot, tmp_path / "target")
    for name in ("random.bin", "text.log", "mixed.bin"):
        assert (tmp_path / "target" / name).read_bytes() == (source / name).read_bytes()
