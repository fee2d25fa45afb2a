"""A repository that an older version initialised twice at once: objects sealed with an
orphan key are named by verify and removed by `repair-orphans`, and the repository's own
snapshots stay readable throughout.

The losing process is reproduced as it was: a second master key wrapped with the same
secret, and a `Repository` holding that key with the config it wrote (since replaced)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from backups.engine.backends import open_backend
from backups.engine.keys import MasterKey, load_key_encryption_key, wrap_master_key
from backups.engine.repository import Repository
from backups.engine.errors import OrphanKey
from backups.engine.tests.helpers import LOCAL_ONLY, write_files

ROOT = Path(__file__).resolve().parents[3]
SECRET = "the one operator passphrase"


def _lost_initialisation(any_backend, tmp_path):
    """(orphan key name, loser's snapshot id, winner's snapshot id) after the old race.

    The two processes' first backups ran at the same time, each having loaded the index
    before the other wrote to it: the loser's objects are written through a scratch
    location and copied in, which stores exactly what the concurrent run stored."""
    winner = Repository.init(any_backend, SECRET)
    master = MasterKey.generate()
    key_object = wrap_master_key(master, load_key_encryption_key(SECRET))
    key_name = f"keys/{hashlib.sha256(key_object).hexdigest()}"
    any_backend.put(key_name, key_object)
    scratch = open_backend(str(tmp_path / "loser-scratch"))
    loser = Repository(scratch, master, dict(winner.config, id="the-lost-config"), key_name)
    write_files(tmp_path / "lost", {"a.txt": b"backed up by the losing process"})
    write_files(tmp_path / "kept", {"b.txt": b"backed up by the winner"})
    kept = winner.backup(tmp_path / "kept", source="volume:kept", parent=None).snapshot_id
    lost = loser.backup(tmp_path / "lost", source="volume:lost", parent=None).snapshot_id
    for prefix in ("data/", "index/", "snapshots/"):
        for name in scratch.list(prefix):
            any_backend.put(name, scratch.get(name))
    return key_name, lost, kept


def test_open_skips_the_orphan_key_and_verify_names_what_it_sealed(any_backend, tmp_path):
    orphan, lost, kept = _lost_initialisation(any_backend, tmp_path)
    repository = Repository.open(any_backend, SECRET)
    assert list(repository.orphan_ciphers) == [orphan]
    assert repository.key_name != orphan
    report = repository.verify()
    assert not report.ok
    sealed = [error for error in report.errors if f"sealed with key {orphan}" in error]
    assert any(f"snapshots/{lost}" in error for error in sealed)
    assert any(error.startswith("index/") for error in sealed)
    assert kept not in report.broken_snapshots


def test_repair_orphans_lists_then_removes_and_verify_passes(any_backend, tmp_path):
    from backups.engine.orphans import remove_orphan_objects

    orphan, lost, kept = _lost_initialisation(any_backend, tmp_path)
    listing = remove_orphan_objects(Repository.open(any_backend, SECRET), dry_run=True)
    assert listing.orphan_keys == [orphan] and not listing.removed
    assert [snapshot["id"] for snapshot in listing.snapshots] == [lost]
    assert listing.snapshots[0]["source"] == "volume:lost"
    assert any_backend.exists(f"snapshots/{lost}")  # a dry run deletes nothing

    removed = remove_orphan_objects(Repository.open(any_backend, SECRET))
    assert removed.removed
    repository = Repository.open(any_backend, SECRET)
    assert repository.orphan_ciphers == {}
    assert not any_backend.exists(orphan) and not any_backend.exists(f"snapshots/{lost}")
    repository.prune()
    report = Repository.open(any_backend, SECRET).verify(read_data_percent=100)
    assert report.ok, report.errors
    assert b"".join(repository.open_file(kept, "/b.txt")) == b"backed up by the winner"


def test_repair_orphans_cli_prints_json_and_changes_nothing_in_a_dry_run(tmp_path):
    backend = open_backend(str(tmp_path / "repo"))
    orphan, lost, _ = _lost_initialisation(backend, tmp_path)
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    completed = subprocess.run(
        [sys.executable, "-m", "backups.engine", "repair-orphans", "--dry-run",
         "--repo", str(tmp_path / "repo"), "--key-file", str(key_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["orphan_keys"] == [orphan] and document["removed"] is False
    assert backend.exists(f"snapshots/{lost}")


@LOCAL_ONLY
def test_an_orphan_key_is_listed_as_such_and_not_removed_alone(any_backend, tmp_path):
    orphan, lost, _ = _lost_initialisation(any_backend, tmp_path)
    repository = Repository.open(any_backend, SECRET)
    assert [key["orphan"] for key in repository.list_keys() if key["name"] == orphan] == [True]
    with pytest.raises(OrphanKey, match="repair-orphans"):
        repository.remove_key(orphan)
    assert any_backend.exists(orphan) and any_backend.exists(f"snapshots/{lost}")
