"""pack_selection.unverified_first: never-verified packs first, then the oldest, up to a share;
and verify_repository reading exactly the packs a selection picks."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from backups import engine
from backups.engine.pack_selection import unverified_first
from backups.engine.tests.helpers import LOCAL_ONLY, write_files
from backups.engine.verify import verify_repository

pytestmark = pytest.mark.engine

KEY = "33" * 32
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_every_never_verified_pack_is_read_even_beyond_the_percentage():
    chosen = unverified_first(["c", "a", "b", "d"], {"d": T0}, percent=10)
    assert chosen == ["a", "b", "c"]


def test_after_the_new_packs_the_longest_unverified_fill_the_share():
    verified = {"old": T0, "older": T0 - timedelta(days=3), "recent": T0 + timedelta(days=1), "mid": T0}
    chosen = unverified_first(["new", "old", "older", "recent", "mid"], verified, percent=60)
    assert chosen == ["new", "older", "mid"]  # 3 of 5; equal times in id order


def test_zero_percent_reads_nothing_and_a_full_read_reads_everything():
    verified = {"a": T0}
    assert unverified_first(["a", "b"], verified, percent=0) == []
    assert unverified_first(["a", "b"], verified, percent=100) == ["b", "a"]
    assert unverified_first([], {}, percent=100) == []
    with pytest.raises(ValueError):
        unverified_first(["a"], {}, percent=101)


def test_every_pack_verified_at_or_before_due_before_is_read_whatever_the_percentage():
    verified = {f"p{day:02d}": T0 + timedelta(days=day) for day in range(10)}
    chosen = unverified_first(list(verified) + ["new"], verified, percent=1, due_before=T0 + timedelta(days=3))
    assert chosen == ["new", "p00", "p01", "p02", "p03"]
    # The percentage still wins when it asks for more, and 0 still reads nothing.
    assert len(unverified_first(list(verified), verified, percent=60, due_before=T0)) == 6
    assert unverified_first(list(verified), verified, percent=0, due_before=T0 + timedelta(days=30)) == []


@LOCAL_ONLY
def test_verify_reads_the_selected_packs_only_and_names_them(any_backend, tmp_path):
    repo = engine.Repository.init(any_backend, KEY)
    source = tmp_path / "source"
    for number in range(3):
        write_files(source, {f"file{number}": os.urandom(4000)})
        repo.backup(source, source="vol")
    packs = sorted(repo.list_packs())
    offered = []

    def select(pack_ids):
        offered.extend(pack_ids)
        return [packs[0], "not-a-pack"]

    report = verify_repository(repo, read_data_percent=1, select=select)
    assert report.ok and offered == packs
    assert report.read_pack_ids == [packs[0]] and report.packs_read == 1
    assert "read_pack_ids" not in report.to_json()
    stored = {pack_id: any_backend.size(name) for pack_id, name in repo.list_packs().items()}
    assert report.pack_sizes == stored and "pack_sizes" not in report.to_json()


@LOCAL_ONLY
def test_a_backup_names_the_packs_it_wrote_with_their_sizes(any_backend, tmp_path):
    repo = engine.Repository.init(any_backend, KEY)
    source = tmp_path / "source"
    write_files(source, {"a": os.urandom(5000)})
    first = repo.backup(source, source="vol")
    sizes = {pack_id: any_backend.size(name) for pack_id, name in repo.list_packs().items()}
    assert first.packs == sizes and first.stats["packs_written"] == len(sizes)
    unchanged = repo.backup(source, source="vol")
    assert unchanged.packs == {}
