"""Snapshot manifests carry the caller's metadata (version 2); manifests without it stay
version 1, byte for byte as before, and both versions are read."""

from __future__ import annotations

import json

import pytest

from backups import engine
from backups.engine.format import ObjectType
from backups.engine.repository import forget_cached_manifests

from .helpers import new_repository

METADATA = {"catalog": {"version": 1, "volume": {"name": "db-1", "labels": {"team": "a"}}}}


def stored_document(repo, snapshot_id: str) -> dict:
    name = f"snapshots/{snapshot_id}"
    return json.loads(repo.cipher.open_envelope(repo.backend.get(name), ObjectType.SNAPSHOT, name))


@pytest.fixture
def repo_and_source(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.txt").write_bytes(b"alpha")
    return new_repository(tmp_path / "repo"), source


def test_metadata_is_stored_as_a_version_2_manifest_and_read_back(repo_and_source):
    repo, source = repo_and_source
    result = repo.backup(str(source), source="volume:1", metadata=METADATA)
    assert stored_document(repo, result.snapshot_id)["version"] == 2
    forget_cached_manifests()  # read from storage, not from what the writer cached
    [listed] = repo.snapshots()
    assert listed.metadata == METADATA and repo.load_snapshot(result.snapshot_id).metadata == METADATA
    assert listed.to_json()["metadata"] == METADATA
    listed.metadata["catalog"]["volume"]["name"] = "changed"  # callers get copies
    assert repo.snapshots()[0].metadata == METADATA


def test_a_backup_without_metadata_writes_the_version_1_manifest_as_before(repo_and_source):
    repo, source = repo_and_source
    result = repo.backup(str(source), source="volume:1")
    document = stored_document(repo, result.snapshot_id)
    assert document["version"] == 1 and "metadata" not in document
    assert repo.load_snapshot(result.snapshot_id).metadata == {}


@pytest.mark.parametrize("metadata", [["not", "an", "object"], "text", None])
def test_a_version_2_manifest_whose_metadata_is_not_an_object_is_malformed(tmp_path, metadata):
    repo = new_repository(tmp_path / "repo")
    payload = json.dumps({"version": 2, "tree": "00" * 32, "time": "2026-01-01T00:00:00+00:00",
                          "metadata": metadata})
    repo.backend.put("snapshots/" + "ab" * 32, repo.cipher.seal_envelope(ObjectType.SNAPSHOT, payload.encode()))
    with pytest.raises(engine.FormatError, match="malformed"):
        repo.load_snapshot("ab" * 32)


def test_a_version_1_manifest_with_a_metadata_key_has_no_metadata(tmp_path):
    repo = new_repository(tmp_path / "repo")
    payload = json.dumps({"version": 1, "tree": "00" * 32, "time": "2026-01-01T00:00:00+00:00",
                          "metadata": METADATA})
    repo.backend.put("snapshots/" + "cd" * 32, repo.cipher.seal_envelope(ObjectType.SNAPSHOT, payload.encode()))
    assert repo.load_snapshot("cd" * 32).metadata == {}
