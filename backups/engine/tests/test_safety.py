"""The engine refuses what it must: crafted trees and manifests, damaged packs, wrong keys,
unknown formats; and the library never imports Django."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from backups import engine
from backups.engine.format import BlobType, ObjectType, header
from backups.engine.tests.helpers import (KEY, craft_snapshot, file_entry, new_repository,
                                          write_blobs)


def test_engine_imports_no_django():
    code = ("import sys; import backups.engine, backups.engine.cli; "
            "print('django' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.dirname(os.path.abspath(__file__))))), check=True)
    assert output.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["..", ".", "", "a/../../escape", "/etc/passwd", "nul\x00byte"])
def test_restore_refuses_escaping_names(tmp_path, name):
    repo = new_repository(tmp_path / "repo")
    data_id, = write_blobs(repo, [(b"owned", BlobType.DATA)])
    snapshot = craft_snapshot(repo, {"version": 1, "entries": [
        file_entry(name, [data_id], size=5)]})
    target = tmp_path / "deep" / "target"
    with pytest.raises(engine.UnsafePath):
        repo.restore(snapshot, target)
    assert not (tmp_path / "escape").exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"owned"]


def test_restore_refuses_duplicate_names_symlink_then_dir(tmp_path):
    repo = new_repository(tmp_path / "repo")
    inner, = write_blobs(repo, [(json.dumps({"version": 1, "entries": []}).encode(),
                                 BlobType.TREE)])
    snapshot = craft_snapshot(repo, {"version": 1, "entries": [
        {"name": "x", "type": "symlink", "target": str(tmp_path), "mode": 0o777},
        {"name": "x", "type": "dir", "subtree": inner.hex(), "mode": 0o755}]})
    with pytest.raises(engine.UnsafePath):
        repo.restore(snapshot, tmp_path / "target")


def test_restore_never_writes_through_a_symlink_in_the_target(tmp_path):
    source = tmp_path / "source"
    (source / "etc").mkdir(parents=True)
    (source / "etc" / "passwd").write_text("restored")
    repo = new_repository(tmp_path / "repo")
    repo.backup(source)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "etc")  # planted by an attacker before the restore
    with pytest.raises(engine.UnsafePath):
        repo.restore("latest", target)
    assert list(outside.iterdir()) == []


def test_restore_refuses_a_size_that_does_not_match_the_data(tmp_path):
    repo = new_repository(tmp_path / "repo")
    data_id, = write_blobs(repo, [(b"tiny", BlobType.DATA)])
    snapshot = craft_snapshot(repo, {"version": 1, "entries": [
        file_entry("huge", [data_id], size=1 << 60)]})
    with pytest.raises(engine.FormatError):
        repo.restore(snapshot, tmp_path / "target")
    assert not (tmp_path / "target" / "huge").exists()


def test_restore_refuses_unknown_tree_version_and_types(tmp_path):
    repo = new_repository(tmp_path / "repo")
    for document in ({"version": 99, "entries": []},
                     {"version": 1, "entries": [{"name": "dev", "type": "chardev"}]},
                     {"version": 1, "entries": [file_entry("f", size=0, mode=-1)]},
                     ["not", "a", "tree"]):
        snapshot = craft_snapshot(repo, document)
        with pytest.raises(engine.FormatError):
            repo.restore(snapshot, tmp_path / "target")


def test_unknown_manifest_version_and_bad_magic_are_format_errors(tmp_path):
    repo = new_repository(tmp_path / "repo")
    payload = json.dumps({"version": 7, "tree": "00" * 32, "time": "2026-01-01T00:00:00+00:00"})
    repo.backend.put("snapshots/" + "ab" * 32,
                     repo.cipher.seal_envelope(ObjectType.SNAPSHOT, payload.encode()))
    with pytest.raises(engine.FormatError, match="version"):
        repo.load_snapshot("ab" * 32)
    repo.backend.put("snapshots/" + "cd" * 32, b"XXXX\x01\x05garbage")
    with pytest.raises(engine.FormatError, match="magic"):
        repo.load_snapshot("cd" * 32)
    future = bytearray(repo.backend.get("config"))
    future[4] = 2  # a format version from the future
    repo.backend.put("config", bytes(future))
    with pytest.raises(engine.FormatError, match="version 2"):
        engine.Repository.open(repo.backend, KEY)


def test_flipped_byte_in_a_pack_is_caught_by_restore(tmp_path, any_backend):
    source = tmp_path / "source"
    source.mkdir()
    (source / "data").write_bytes(os.urandom(3 * 1024 * 1024))
    repo = engine.Repository.init(any_backend, KEY)
    repo.backup(source)
    biggest = max(any_backend.list("data/"), key=any_backend.size)
    damaged = bytearray(any_backend.get(biggest))
    damaged[len(damaged) // 2] ^= 0x01
    any_backend.put(biggest, bytes(damaged))
    with pytest.raises(engine.DataIntegrityError):
        engine.Repository.open(any_backend, KEY).restore("latest", tmp_path / "target")
    assert not (tmp_path / "target" / "data").exists()
    assert not [n for n in os.listdir(tmp_path / "target") if n.startswith(".sp-restore")]


def test_wrong_key_and_missing_repository(tmp_path):
    repo = new_repository(tmp_path / "repo")
    with pytest.raises(engine.WrongKey) as caught:
        engine.Repository.open(repo.backend, "22" * 32)
    assert str(caught.value) == "The key does not open this repository."
    with pytest.raises(engine.WrongKey):
        engine.Repository.open(repo.backend, "a passphrase")
    with pytest.raises(engine.RepositoryNotFound):
        engine.Repository.open(engine.LocalBackend(str(tmp_path / "none")), KEY)
    with pytest.raises(engine.RepositoryExists):
        engine.Repository.init(repo.backend, KEY)
    with pytest.raises(engine.KeyMissing):
        engine.load_key_encryption_key("")


def test_key_rotation_without_rewriting_data(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "f").write_text("payload")
    repo = new_repository(tmp_path / "repo")
    repo.backup(source)
    packs_before = sorted(repo.list_packs())
    new_name = repo.add_key("correct horse battery staple")
    rotated = engine.Repository.open(repo.backend, "correct horse battery staple")
    assert rotated.key_name == new_name
    rotated.remove_key(repo.key_name)
    with pytest.raises(engine.WrongKey):
        engine.Repository.open(repo.backend, KEY)
    assert [key["name"] for key in rotated.list_keys()] == [new_name]
    with pytest.raises(engine.EngineError, match="last key"):
        rotated.remove_key(new_name)
    assert sorted(rotated.list_packs()) == packs_before
    assert b"".join(rotated.open_file("latest", "f")) == b"payload"


def test_key_removal_refuses_an_unknown_name_and_the_key_in_use(tmp_path):
    repo = new_repository(tmp_path / "repo")
    other = repo.add_key("another operator secret")
    with pytest.raises(engine.KeyNotFound):
        repo.remove_key("keys/" + "0" * 64)
    with pytest.raises(engine.KeyInUse):
        repo.remove_key(repo.key_name)
    assert sorted(key["name"] for key in repo.list_keys()) == sorted([repo.key_name, other])
    repo.remove_key(other)
    assert [key["current"] for key in repo.list_keys()] == [True]


def test_no_key_material_in_reprs(tmp_path):
    repo = new_repository(tmp_path / "repo")
    kek = engine.load_key_encryption_key(KEY)
    for text in (repr(kek), repr(repo.cipher), repr(repo._master), repr(repo)):
        assert KEY not in text and "11111111" not in text


def test_objects_start_with_magic_and_version(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "f").write_text("x")
    repo = new_repository(tmp_path / "repo")
    repo.backup(source)
    expected = {"config": ObjectType.CONFIG, "keys": ObjectType.KEY, "data": ObjectType.PACK,
                "index": ObjectType.INDEX, "snapshots": ObjectType.SNAPSHOT}
    for kind, object_type in expected.items():
        names = ["config"] if kind == "config" else list(repo.backend.list(kind + "/"))
        assert names
        for name in names:
            assert repo.backend.get(name, 0, 6) == header(object_type)
