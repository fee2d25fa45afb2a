"""Backup and restore runners against the real engine and a real local repository,
in-process (the runner is called through `runners.execute`, as the Celery task does)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups import runners, services
from backups.models import Backup, BackupStatus, BackupTrigger, Job, JobKind, JobStatus
from backups.runners import backup as backup_runner
from backups.runners import restore as restore_runner
from backups.storage import open_repository
from volumes.models import Volume, VolumeStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_repository_for_every_test(own_repository):
    return own_repository


def snapshots_tagged(tag: str) -> list:
    repository = open_repository()
    try:
        return repository.snapshots(tags=[tag])
    finally:
        repository.close()


def back_up(volume) -> Backup:
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED, Job.objects.get(pk=backup.job_id).error
    backup.refresh_from_db()
    return backup


def cancel_at_first_progress(use_runner, kind, real_runner):
    """Run `real_runner`, but request cancellation the first time it reports progress, as a
    cancel arriving between two chunks would."""

    def runner(job, context):
        report = context.progress

        def progress(done, total, message=""):
            report(done, total, message)
            if done > 0:
                context.cancel_event.set()

        context.progress = progress
        return real_runner(job, context)

    use_runner(kind, runner)


def test_a_backup_writes_one_snapshot_tagged_with_volume_and_job(volume):
    backup = back_up(volume)
    assert backup.status == BackupStatus.COMPLETED and backup.snapshot_id
    assert backup.stats["files"] == 2 and backup.stats["bytes_read"] == len(b"alpha") + len(b"beta")
    assert {"dirs", "bytes_new", "bytes_stored", "duration_seconds", "warnings"} <= set(backup.stats)
    [snapshot] = snapshots_tagged(f"job:{backup.job_id}")
    assert snapshot.id == backup.snapshot_id and f"volume:{volume.id}" in snapshot.tags
    assert Volume.objects.get(pk=volume.pk).used_bytes == 9


def test_a_redelivered_backup_adopts_the_snapshot_its_dead_attempt_wrote(volume, settings):
    backup = back_up(volume)
    first_snapshot = backup.snapshot_id
    # The worker "died" after the engine committed the snapshot, before the catalog update.
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 5)
    Job.objects.filter(pk=backup.job_id).update(status=JobStatus.RUNNING, heartbeat_at=stale, worker="gone:1",
                                                finished_at=None)
    Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.RUNNING, snapshot_id="", stats={})
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED
    backup.refresh_from_db()
    job = Job.objects.get(pk=backup.job_id)
    assert job.result["adopted"] is True and job.attempts == 2
    assert backup.snapshot_id == first_snapshot and backup.stats["files"] == 2
    assert len(snapshots_tagged(f"job:{backup.job_id}")) == 1


def test_a_cancelled_backup_leaves_no_snapshot(make_volume, use_runner):
    volume = make_volume("vol-big", files={f"file-{index}.bin": os.urandom(2 * 1024 * 1024) for index in range(4)})
    cancel_at_first_progress(use_runner, JobKind.BACKUP, backup_runner.run)
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.CANCELLED
    backup.refresh_from_db()
    assert backup.status == BackupStatus.CANCELLED and backup.snapshot_id == ""
    assert snapshots_tagged(f"job:{backup.job_id}") == []


def test_a_backup_of_a_volume_whose_folder_vanished_fails_clearly(volume):
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    Path(volume.path).rename(Path(volume.path).with_name("moved-away"))
    assert runners.execute(backup.job_id) == JobStatus.FAILED
    job = Job.objects.get(pk=backup.job_id)
    assert job.error_code == "volume_not_found" and "missing" in job.error


def test_restore_in_place_brings_back_the_snapshot_and_drops_newer_files(volume, sent_messages):
    backup = back_up(volume)
    root = Path(volume.path)
    (root / "a.txt").write_bytes(b"overwritten")
    (root / "new.txt").write_bytes(b"not in the backup")
    job = services.start_restore(backup)
    assert Volume.objects.get(pk=volume.pk).status == VolumeStatus.RESTORING
    assert runners.execute(job.pk) == JobStatus.SUCCEEDED
    assert (root / "a.txt").read_bytes() == b"alpha" and (root / "dir" / "b.txt").read_bytes() == b"beta"
    assert not (root / "new.txt").exists()
    assert Volume.objects.get(pk=volume.pk).status == VolumeStatus.AVAILABLE
    assert sorted(path.name for path in root.parent.iterdir() if path.name.startswith(".")) == []


def test_a_restore_that_stops_half_way_leaves_the_old_data(volume, use_runner, sent_messages):
    backup = back_up(volume)
    root = Path(volume.path)
    (root / "a.txt").write_bytes(b"current data")
    cancel_at_first_progress(use_runner, JobKind.RESTORE, restore_runner.run)
    job = services.start_restore(backup)
    assert runners.execute(job.pk) == JobStatus.CANCELLED
    assert (root / "a.txt").read_bytes() == b"current data"
    assert Volume.objects.get(pk=volume.pk).status == VolumeStatus.AVAILABLE
    assert not [path for path in root.parent.iterdir() if path.name.startswith(".restore-")]


def test_an_interrupted_swap_is_repaired_by_the_next_attempt(tmp_path):
    target, replaced = tmp_path / "volume", tmp_path / ".replaced-x"
    replaced.mkdir()
    (replaced / "keep.txt").write_bytes(b"old")
    restore_runner.repair_interrupted_swap(target, replaced)
    assert (target / "keep.txt").read_bytes() == b"old" and not replaced.exists()


def damage_largest_pack(repository_dir: Path) -> None:
    packs = [path for path in (repository_dir / "data").rglob("*") if path.is_file()]
    pack = max(packs, key=lambda path: path.stat().st_size)
    content = bytearray(pack.read_bytes())
    middle = len(content) // 2
    content[middle:middle + 16] = bytes(byte ^ 0xFF for byte in content[middle:middle + 16])
    pack.write_bytes(bytes(content))


def test_verify_succeeds_on_a_healthy_repository_and_fails_with_the_report_on_damage(make_volume, own_repository):
    volume = make_volume("vol-verify", files={"data.bin": os.urandom(512 * 1024)})
    back_up(volume)
    healthy = services.start_verify(read_data_percent=100)
    assert healthy.queue == "maintenance"
    assert runners.execute(healthy.pk) == JobStatus.SUCCEEDED
    result = Job.objects.get(pk=healthy.pk).result
    assert result["report"]["ok"] is True and result["read_data_percent"] == 100

    damage_largest_pack(own_repository)
    backup = Backup.objects.get(volume_id=volume.pk)
    damaged = services.start_verify(read_data_percent=100, backup=backup)
    assert runners.execute(damaged.pk) == JobStatus.FAILED
    job = Job.objects.get(pk=damaged.pk)
    assert job.error_code == "verify_failed" and job.result["report"]["ok"] is False
    assert job.result["report"]["damaged_packs"]
    assert job.result["backup"] == str(backup.pk) and job.result["snapshot_ok"] is False


def test_prune_applies_the_policy_per_volume_and_marks_forgotten_backups(make_volume, sent_messages):
    from backups.models import Policy

    policy = Policy.objects.create(name="keep-one", retention={"keep_last": 1})
    volume = make_volume("vol-prune", files={"a.txt": b"one"}, policy=policy)
    other = make_volume("vol-other", files={"b.txt": b"two"})  # not on the policy: untouched
    older = back_up(volume)
    Path(volume.path, "a.txt").write_bytes(b"one, changed")
    newer = back_up(volume)
    untouched = back_up(other)

    dry = services.start_prune(policy=policy, dry_run=True)
    assert runners.execute(dry.pk) == JobStatus.SUCCEEDED
    assert Job.objects.get(pk=dry.pk).result["forgotten"] == {"vol-prune": [older.snapshot_id]}
    assert Backup.objects.get(pk=older.pk).forgotten_at is None

    job = services.start_prune(policy=policy)
    assert runners.execute(job.pk) == JobStatus.SUCCEEDED
    assert Backup.objects.get(pk=older.pk).forgotten_at is not None
    assert Backup.objects.get(pk=newer.pk).forgotten_at is None
    assert Backup.objects.get(pk=untouched.pk).forgotten_at is None
    repository = open_repository()
    try:
        remaining = {snapshot.id for snapshot in repository.snapshots()}
    finally:
        repository.close()
    assert remaining == {newer.snapshot_id, untouched.snapshot_id}
    # A forgotten backup can no longer be restored.
    with pytest.raises(services.BackupNotRestorable):
        services.start_restore(Backup.objects.get(pk=older.pk))


def test_a_restore_taken_over_by_another_worker_does_not_swap_its_data_in(volume, use_runner, sent_messages):
    backup = back_up(volume)
    root = Path(volume.path)
    (root / "a.txt").write_bytes(b"current data")

    def taken_over_mid_restore(job, context):
        confirm = context.confirm_ownership

        def taken_over_then_confirm():
            # The reconciler gave the job to another worker while this one was restoring.
            Job.objects.filter(pk=job.pk).update(worker="another-host:1:ns1")
            confirm()

        context.confirm_ownership = taken_over_then_confirm
        return restore_runner.run(job, context)

    use_runner(JobKind.RESTORE, taken_over_mid_restore)
    job = services.start_restore(backup)
    assert runners.execute(job.pk) == "lost"
    assert (root / "a.txt").read_bytes() == b"current data"
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING  # the new owner's to finish
