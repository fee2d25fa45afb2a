"""A platform backup names its volume inside the snapshot, so the disaster-recovery CLI can
tell volumes apart from the repository alone (no platform database)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backups.tests.test_runners import back_up, snapshots_tagged

pytestmark = pytest.mark.django_db


def test_the_dr_cli_lists_platform_backups_by_volume_name(make_volume, own_repository, settings, tmp_path):
    backup = back_up(make_volume("payroll-db", files={"a.txt": b"alpha"}))
    [snapshot] = snapshots_tagged(f"job:{backup.job_id}")
    assert "volume-name:payroll-db" in snapshot.tags
    key_file = tmp_path / "key"
    key_file.write_text(settings.REPOSITORY_KEY)
    listing = subprocess.run([sys.executable, "-m", "backups.engine", "snapshots", "--repo", str(own_repository),
                              "--key-file", str(key_file)], capture_output=True, text=True, timeout=60,
                             cwd=settings.BASE_DIR)
    assert listing.returncode == 0, listing.stderr
    [row] = listing.stdout.splitlines()[1:]
    assert row.split()[:4] == [snapshot.short_id, *row.split()[1:3], "payroll-db"]
