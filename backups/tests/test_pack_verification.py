"""Verify jobs read never-verified packs first and remember what they read, so damage in data
written since the last verify fails the next one whatever its percentage."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from backups import pack_verification, runners, services
from backups.models import BackupTrigger, Job, JobStatus, PackVerification

pytestmark = pytest.mark.django_db


def back_up(volume) -> None:
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED


def verify(percent: float) -> Job:
    job = services.start_verify(read_data_percent=percent)
    runners.execute(job.pk)
    return Job.objects.get(pk=job.pk)


def pack_files(repository_dir: Path) -> dict[str, Path]:
    return {path.name: path for path in (repository_dir / "data").rglob("*") if path.is_file()}


def flip_a_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))


def test_the_first_verify_reads_every_pack_then_only_the_oldest_share(make_volume, own_repository):
    volume = make_volume("vol-packs", files={"a.bin": os.urandom(300_000)})
    back_up(volume)
    packs = pack_files(own_repository)

    first = verify(10)
    assert first.status == JobStatus.SUCCEEDED
    assert first.result["report"]["packs_read"] == len(packs) == first.result["packs_verified"]
    assert set(PackVerification.objects.values_list("pack_id", flat=True)) == set(packs)
    assert PackVerification.objects.filter(job_id=first.pk).count() == len(packs)

    second = verify(10)
    assert second.result["report"]["packs_read"] == math.ceil(len(packs) * 0.1)

    before = pack_verification.verified_times()
    structure_only = verify(0)
    assert structure_only.result["report"]["packs_read"] == 0 and "packs_verified" not in structure_only.result
    assert pack_verification.verified_times() == before


def test_a_flipped_byte_in_a_pack_written_since_the_last_verify_fails_at_any_percentage(make_volume, own_repository):
    volume = make_volume("vol-new-data", files={"old.bin": os.urandom(200_000)})
    back_up(volume)
    assert verify(1).status == JobStatus.SUCCEEDED
    verified_before = set(pack_files(own_repository))

    Path(volume.path, "new.bin").write_bytes(os.urandom(200_000))
    back_up(volume)
    new_packs = {name: path for name, path in pack_files(own_repository).items() if name not in verified_before}
    assert new_packs
    damaged_id, damaged_path = sorted(new_packs.items(), key=lambda item: item[1].stat().st_size)[-1]
    flip_a_byte(damaged_path)

    failed = verify(1)
    assert failed.status == JobStatus.FAILED and failed.error_code == "verify_failed"
    assert damaged_id in failed.result["report"]["damaged_packs"]
    assert PackVerification.objects.get(pack_id=damaged_id).verified_at is None
    # Still unverified: the next verify reads it again and fails again.
    assert verify(1).status == JobStatus.FAILED


def test_rows_of_packs_no_longer_in_the_repository_are_forgotten(make_volume, own_repository):
    volume = make_volume("vol-pruned", files={"a.bin": os.urandom(100_000)})
    back_up(volume)
    PackVerification.objects.create(pack_id="f" * 64, verified_at="2026-01-01T00:00:00Z",
                                    first_seen_at="2026-01-01T00:00:00Z")
    verify(5)
    assert not PackVerification.objects.filter(pack_id="f" * 64).exists()
    assert PackVerification.objects.count() == len(pack_files(own_repository))
