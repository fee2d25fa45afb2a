"""Restore drills: a good snapshot passes entry for entry, every kind of difference between
the restored files and the snapshot is found, damage fails the restore, and the scratch
directory is gone afterwards whatever happened."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
from pathlib import Path

import pytest

from backups import engine
from backups.engine.drill import DrillReport, check_restored
from backups.engine.restorer import restore
from backups.engine.tests.helpers import KEY, new_repository, write_files


@pytest.fixture
def backed_up(tmp_path):
    """(repository, snapshot id) of a tree with every kind of entry the check compares."""
    source = tmp_path / "source"
    write_files(source, {"etc/app.conf": b"setting=1\n", "empty": b"",
                         "data/big.bin": os.urandom(3 * 1024 * 1024)})  # several chunks
    os.chmod(source / "etc", 0o750)
    os.chmod(source / "etc" / "app.conf", 0o600)
    os.symlink("etc/app.conf", source / "config")
    os.link(source / "etc" / "app.conf", source / "app.conf.link")
    os.mkfifo(source / "pipe", 0o640)
    repo = new_repository(tmp_path / "repo")
    return repo, repo.backup(source).snapshot_id


def test_a_good_snapshot_passes_and_its_scratch_directory_is_removed(tmp_path, backed_up):
    repo, snapshot_id = backed_up
    seen = []
    report = repo.drill(snapshot_id, tmp_path / "scratch" / "job-1", progress=lambda *args: seen.append(args))
    assert report.ok and report.difference_count == 0 and report.differences == []
    assert (report.files, report.dirs, report.symlinks, report.specials) == (4, 2, 1, 1)
    assert report.bytes_checked == 3 * 1024 * 1024 + len(b"setting=1\n")
    assert report.restore.files == 4 and report.scratch_removed
    assert not (tmp_path / "scratch" / "job-1").exists()
    # Progress runs on through the restore and the check, up to twice the restored bytes.
    assert seen[-1][0] == seen[-1][1] == 2 * report.bytes_checked


def test_every_difference_from_the_snapshot_is_reported(tmp_path, backed_up):
    repo, snapshot_id = backed_up
    restored = tmp_path / "restored"
    restore(repo, snapshot_id, restored)
    big = bytearray((restored / "data" / "big.bin").read_bytes())
    big[-10] ^= 0x01  # same size, one flipped bit in the last chunk
    (restored / "data" / "big.bin").write_bytes(bytes(big))
    os.chmod(restored / "etc", 0o755)
    os.unlink(restored / "config")
    os.symlink("elsewhere", restored / "config")
    (restored / "empty").write_bytes(b"grown")
    (restored / "stray.tmp").write_bytes(b"not in the snapshot")
    os.unlink(restored / "app.conf.link")
    (restored / "app.conf.link").write_bytes(b"setting=1\n")  # same bytes, but no longer a hard link
    os.chmod(restored / "app.conf.link", 0o600)
    os.unlink(restored / "pipe")
    os.mkdir(restored / "pipe")

    report = check_restored(repo, repo.load_snapshot(snapshot_id), restored, DrillReport(snapshot_id=snapshot_id))

    problems = {item["path"]: item["problem"] for item in report.differences}
    assert not report.ok and report.difference_count == len(problems) == 7, problems
    assert problems["/data/big.bin"].startswith("content differs in chunk")
    assert problems["/etc"] == "mode 0755, the snapshot has 0750"
    assert problems["/config"] == "symlink target differs"
    assert problems["/empty"] == "size 5, the snapshot has 0"
    assert problems["/stray.tmp"] == "is not in the snapshot"
    # The root's names are checked before its subdirectories: the copy claims the inode first.
    assert problems["/etc/app.conf"] == "is not a hard link of the snapshot's other names of its inode"
    assert problems["/pipe"] == "is a dir, the snapshot has a fifo"


def test_a_missing_file_and_a_file_cut_short_are_differences(tmp_path, backed_up):
    repo, snapshot_id = backed_up
    restored = tmp_path / "restored"
    restore(repo, snapshot_id, restored)
    os.unlink(restored / "etc" / "app.conf")
    os.unlink(restored / "app.conf.link")
    with open(restored / "data" / "big.bin", "r+b") as handle:
        handle.seek(5)
        handle.write(b"\x00")  # the first chunk changes; size stays

    report = check_restored(repo, repo.load_snapshot(snapshot_id), restored, DrillReport(snapshot_id=snapshot_id))

    problems = {item["path"]: item["problem"] for item in report.differences}
    assert problems == {"/etc/app.conf": "file is missing", "/app.conf.link": "file is missing",
                        "/data/big.bin": problems["/data/big.bin"]}
    assert problems["/data/big.bin"].startswith("content differs in chunk 1 of ")


def test_a_flipped_byte_in_a_pack_fails_the_drill_and_leaves_no_scratch(tmp_path, backed_up):
    repo, snapshot_id = backed_up
    biggest = max(repo.backend.list("data/"), key=repo.backend.size)
    damaged = bytearray(repo.backend.get(biggest))
    damaged[len(damaged) // 2] ^= 0x01
    repo.backend.put(biggest, bytes(damaged))
    with pytest.raises(engine.DataIntegrityError):
        engine.Repository.open(repo.backend, KEY).drill(snapshot_id, tmp_path / "scratch")
    assert not (tmp_path / "scratch").exists()


def test_a_cancelled_drill_leaves_no_scratch(tmp_path, backed_up):
    repo, snapshot_id = backed_up
    with pytest.raises(engine.Cancelled):
        repo.drill(snapshot_id, tmp_path / "scratch", cancel=lambda: True)
    assert not (tmp_path / "scratch").exists()


def test_a_scratch_directory_that_exists_already_is_refused_and_kept(tmp_path, backed_up):
    repo, snapshot_id = backed_up
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "someone-elses").write_bytes(b"x")
    with pytest.raises(engine.TargetError, match="scratch directory"):
        repo.drill(snapshot_id, tmp_path / "scratch")
    assert (tmp_path / "scratch" / "someone-elses").exists()


UNPRIVILEGED = 65534  # nobody


def run_unprivileged(function) -> dict:
    """`function()` in a forked child running as `nobody` (workers do not run as root): its
    JSON-able return value, or {"error": ...}. A fork, not a new interpreter: the one this
    test runs under may not be readable by that user."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read_end)
        try:
            os.setgid(UNPRIVILEGED)
            os.setuid(UNPRIVILEGED)
            answer = function()
        except BaseException as error:  # noqa: BLE001 - everything goes back to the parent
            answer = {"error": traceback.format_exc()}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = json.loads(pipe.read() or b"{}")
    os.waitpid(child, 0)
    return answer


@pytest.fixture
def shared_tmp():
    """A temporary folder another user can reach (pytest's own is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="drill-unprivileged-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_an_unprivileged_drill_checks_and_removes_folders_and_files_the_snapshot_keeps_closed(shared_tmp):
    tmp_path = shared_tmp
    source = tmp_path / "source"
    write_files(source, {"read-only/inner.txt": b"inner", "no-listing/seen.txt": b"seen", "closed/x": b"x",
                         "secret": b"unreadable"})
    os.chmod(source / "secret", 0o000)
    os.chmod(source / "read-only", 0o555)  # cannot be emptied without a chmod
    os.chmod(source / "no-listing", 0o311)  # cannot be listed
    os.chmod(source / "closed", 0o000)  # cannot even be entered
    repo = new_repository(tmp_path / "repo")
    snapshot_id = repo.backup(source).snapshot_id
    for directory, _subdirectories, files in os.walk(tmp_path / "repo"):  # the worker's own repository
        os.chmod(directory, 0o777)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o666)
    base = tmp_path / "drills"
    base.mkdir(mode=0o777)
    os.chmod(base, 0o777)

    def drill_as_nobody() -> dict:
        report = engine.Repository.open(engine.LocalBackend(str(tmp_path / "repo")), KEY).drill(snapshot_id, base / "job")
        return {"ok": report.ok, "differences": report.differences, "files": report.files,
                "removed": report.scratch_removed}

    answer = run_unprivileged(drill_as_nobody)

    assert answer == {"ok": True, "differences": [], "files": 4, "removed": True}
    assert list(base.iterdir()) == []
