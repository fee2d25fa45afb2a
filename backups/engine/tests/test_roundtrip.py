"""Backups restore byte- and metadata-identical: generated trees, sparse files, sub-paths,
browsing, and the same round trip on S3 (moto_server)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backups import engine
from backups.engine.tests.helpers import KEY, new_repository, snapshot_tree

# Names: printable unicode, odd ASCII, and raw undecodable bytes (surrogateescape).
NAME = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
            min_size=1, max_size=12),
    st.binary(min_size=1, max_size=8).map(lambda raw: raw.replace(b"/", b"_").replace(b"\x00", b"_")),
).filter(lambda name: name not in (".", "..", b".", b"..")
         and len(os.fsencode(name)) < 200)
CONTENT = st.one_of(st.just(b""), st.binary(max_size=3000),
                    st.integers(0, 255).map(lambda byte: bytes([byte]) * 700_000))
MODE = st.sampled_from([0o644, 0o600, 0o755, 0o400, 0o4755, 0o1777 & 0o777])
MTIME = st.integers(0, 2_000_000_000 * 10**9)


@st.composite
def trees(draw, depth=0):
    names = draw(st.lists(NAME, max_size=5, unique_by=lambda n: os.fsencode(n)))
    nodes = {}
    for name in names:
        kind = draw(st.sampled_from(["file", "file", "dir", "symlink"] if depth < 2
                                    else ["file", "symlink"]))
        if kind == "file":
            nodes[name] = ("file", draw(CONTENT), draw(MODE), draw(MTIME))
        elif kind == "dir":
            nodes[name] = ("dir", draw(trees(depth=depth + 1)), draw(MTIME))
        else:
            nodes[name] = ("symlink", draw(st.sampled_from(["../x", "/etc/passwd", "a b", "ü"])))
    return nodes


def materialise(nodes: dict, directory: bytes, hardlink_to: list) -> None:
    for name, node in nodes.items():
        path = os.path.join(directory, os.fsencode(name))
        if node[0] == "file":
            with open(path, "wb") as handle:
                handle.write(node[1])
            os.chmod(path, node[2])
            os.utime(path, ns=(node[3], node[3]))
            hardlink_to.append(path)
        elif node[0] == "dir":
            os.mkdir(path)
            materialise(node[1], path, hardlink_to)
            os.utime(path, ns=(node[2], node[2]))
        else:
            os.symlink(node[1], path)


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(nodes=trees(), link=st.booleans())
def test_generated_trees_restore_identically(tmp_path_factory, nodes, link):
    base = tmp_path_factory.mktemp("round")
    source = os.fsencode(base / "source")
    os.mkdir(source)
    files: list = []
    materialise(nodes, source, files)
    if link and files:  # a hardlink beside the first file, restored as a link
        first = files[0]
        os.link(first, os.path.join(source, b"hardlink-of-first"))
        parent = os.path.dirname(first)
        os.utime(parent, ns=(12345, 12345))  # linking changed mtimes; pin them again
    repo = new_repository(base / "repo")
    result = repo.backup(source)
    assert result.warnings == []
    repo.restore(result.snapshot_id, base / "target")
    assert snapshot_tree(base / "target") == snapshot_tree(source)


def test_metadata_hardlinks_and_empty_things(tmp_path):
    source = tmp_path / "source"
    (source / "empty-dir").mkdir(parents=True)
    (source / "empty-file").write_bytes(b"")
    (source / "a.txt").write_bytes(b"hello" * 1000)
    os.link(source / "a.txt", source / "b.txt")
    (source / "sub").mkdir()
    os.symlink("../a.txt", source / "sub" / "link")
    os.chmod(source / "a.txt", 0o640)
    os.utime(source / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    repo = new_repository(tmp_path / "repo")
    snapshot = repo.backup(source).snapshot_id
    repo.restore(snapshot, tmp_path / "target")
    target = tmp_path / "target"
    assert snapshot_tree(target) == snapshot_tree(source)
    assert os.stat(target / "a.txt").st_ino == os.stat(target / "b.txt").st_ino
    assert os.stat(target / "a.txt").st_mtime_ns == 1_600_000_000_123_456_789
    assert os.readlink(target / "sub" / "link") == "../a.txt"
    assert not [n for n in os.listdir(target) if n.startswith(".sp-restore-")]


def test_sparse_file_stays_sparse_and_restores_exactly(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    sparse = source / "disk.img"
    with open(sparse, "wb") as handle:
        handle.write(os.urandom(4096))
        handle.truncate(40 * 1024 * 1024)
        handle.seek(30 * 1024 * 1024)
        handle.write(b"tail data")
    repo = new_repository(tmp_path / "repo")
    repo.backup(source)
    repo.restore("latest", tmp_path / "target")
    restored = tmp_path / "target" / "disk.img"
    assert restored.read_bytes() == sparse.read_bytes()
    allocated = os.stat(restored).st_blocks * 512
    assert allocated < 12 * 1024 * 1024, f"{allocated} bytes allocated: holes were filled"


def test_sub_path_restore_and_browse(tmp_path, any_backend):
    source = tmp_path / "source"
    (source / "etc" / "app").mkdir(parents=True)
    (source / "etc" / "app" / "conf").write_text("x=1\n")
    (source / "top").write_bytes(os.urandom(2 * 1024 * 1024))
    repo = engine.Repository.init(any_backend, KEY)
    snapshot = repo.backup(source, source="volume:7").snapshot_id
    repo.restore(snapshot, tmp_path / "only-etc", sub_path="etc")
    assert (tmp_path / "only-etc" / "app" / "conf").read_text() == "x=1\n"
    assert not (tmp_path / "only-etc" / "top").exists()
    repo.restore(snapshot, tmp_path / "one-file", sub_path="/etc/app/conf")
    assert (tmp_path / "one-file" / "conf").read_text() == "x=1\n"
    assert [e.name for e in repo.list_dir(snapshot, "/")] == ["etc", "top"]
    assert [e.name for e in repo.list_dir(snapshot, "etc/app")] == ["conf"]
    assert b"".join(repo.open_file(snapshot, "/top")) == (source / "top").read_bytes()
    with pytest.raises(engine.PathNotFound):
        repo.list_dir(snapshot, "/nope")
    with pytest.raises(engine.PathNotFound):
        repo.open_file(snapshot, "/etc")
    with pytest.raises(engine.UnsafePath):
        repo.restore(snapshot, tmp_path / "x", sub_path="etc/../../..")


def test_dedup_across_sources_and_within(tmp_path):
    block = os.urandom(3 * 1024 * 1024)
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data").write_bytes(block)
        (tmp_path / name / "copy").write_bytes(block)
    repo = new_repository(tmp_path / "repo")
    first = repo.backup(tmp_path / "one", source="volume:1")
    second = repo.backup(tmp_path / "two", source="volume:2")
    assert first.stats["bytes_new"] < len(block) * 1.1
    assert second.stats["bytes_new"] < 10_000  # only its tree is new
    assert second.snapshot.parent is None  # another source: no parent
    stats = repo.stats()
    assert stats.snapshots == 2 and stats.stored_bytes < len(block) * 1.1


def test_round_trip_on_s3(tmp_path, s3_bucket):
    from backups.engine.backends.s3 import S3Backend

    source = tmp_path / "source"
    (source / "d").mkdir(parents=True)
    (source / "d" / "big").write_bytes(os.urandom(3 * 1024 * 1024))
    (source / "small").write_text("small file")
    backend = S3Backend(s3_bucket.name, "repo", client=s3_bucket.client)
    engine.Repository.init(backend, KEY)
    repo = engine.Repository.open(backend, KEY)
    repo.backup(source)
    repo.restore("latest", tmp_path / "target")
    assert snapshot_tree(tmp_path / "target") == snapshot_tree(source)


def test_a_backup_that_cannot_store_a_pack_fails_and_leaves_no_spool_behind(tmp_path):
    from backups.engine.backend import BackendWrapper
    from backups.engine.errors import BackendError

    class PacksRefused(BackendWrapper):
        def put_spool(self, name, spool):
            raise BackendError("disk says no")

    source = tmp_path / "source"
    source.mkdir()
    (source / "big").write_bytes(os.urandom(3 * 1024 * 1024))
    (source / "small").write_text("small file")
    local = engine.LocalBackend(str(tmp_path / "repo"))
    engine.Repository.init(local, KEY)
    repo = engine.Repository.open(PacksRefused(local), KEY)
    with pytest.raises(BackendError, match="disk says no"):
        repo.backup(source)
    assert list(local.list_temporary()) == []
    assert list(local.list("data/")) == [] and list(local.list("snapshots/")) == []
    # the same repository, storage working again: nothing of the failed run is in the way
    result = engine.Repository.open(local, KEY).backup(source)
    assert result.stats["packs_written"] >= 1 and list(local.list_temporary()) == []
