"""Backup, restore, verify, prune and drill runners against the real engine and a real local
repository, in-process (the runner is called through `runners.execute`, as the Celery task
does)."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups import runners, services
from backups.models import Backup, BackupStatus, BackupTrigger, Job, JobKind, JobStatus
from backups.runners import backup as backup_runner
from backups.runners import drill as drill_runner
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


def test_a_backup_of_a_volume_whose_folder_vanished_fails_clearly(volume, tmp_path):
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    # Moved out of the pool, into the test's own folder: a rerun on the same DATA_DIR starts clean.
    shutil.move(volume.path, tmp_path / "moved-away")
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


# --- restore drills ------------------------------------------------------------------------
@pytest.fixture
def scratch(settings, tmp_path) -> Path:
    settings.DRILL_SCRATCH_DIR = tmp_path / "drills"
    return settings.DRILL_SCRATCH_DIR


@pytest.fixture
def drilled_volume(make_volume):
    volume = make_volume("vol-drill", files={"data.bin": os.urandom(1024 * 1024), "etc/app.conf": b"setting=1\n",
                                             "empty": b""})
    root = Path(volume.path)
    os.chmod(root / "etc" / "app.conf", 0o600)
    os.symlink("etc/app.conf", root / "config")
    return volume


def test_a_drill_restores_into_its_scratch_folder_checks_every_entry_and_removes_it(
        drilled_volume, scratch, use_runner, sent_messages):
    backup = back_up(drilled_volume)
    seen_during_the_run = []

    def watching(job, context):
        report = context.progress

        def progress(done, total, message=""):
            report(done, total, message)
            if scratch.is_dir():
                seen_during_the_run.append(sorted(path.name for path in scratch.iterdir()))

        context.progress = progress
        return drill_runner.run(job, context)

    use_runner(JobKind.DRILL, watching)
    job = services.start_drill(backup)
    assert runners.execute(job.pk) == JobStatus.SUCCEEDED, Job.objects.get(pk=job.pk).error
    job.refresh_from_db()
    report = job.result["drill"]
    assert job.result["ok"] is True and report["ok"] is True and report["differences"] == []
    assert (report["files"], report["dirs"], report["symlinks"]) == (3, 1, 1)
    assert report["bytes_checked"] == 1024 * 1024 + len(b"setting=1\n") and report["scratch_removed"] is True
    assert job.result["backup"] == str(backup.pk) and job.result["volume_name"] == "vol-drill"
    assert job.progress_done == job.progress_total == 2 * report["bytes_checked"]
    # It restored into <DRILL_SCRATCH_DIR>/<job id>, and that folder is gone.
    assert [str(job.pk)] in seen_during_the_run and list(scratch.iterdir()) == []
    assert Backup.objects.get(pk=backup.pk).last_drill_id == job.pk
    volume = Volume.objects.get(pk=drilled_volume.pk)
    assert volume.status == VolumeStatus.AVAILABLE and (Path(volume.path) / "config").is_symlink()


def test_a_drill_of_a_damaged_repository_fails_and_removes_its_scratch(drilled_volume, scratch, own_repository,
                                                                        sent_messages):
    backup = back_up(drilled_volume)
    damage_largest_pack(own_repository)
    job = services.start_drill(backup)
    assert runners.execute(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error_code == "drill_restore_failed" and "could not be restored" in job.error
    assert job.result["ok"] is False and job.result["cause"]["code"] == "integrity_error"
    assert job.result["snapshot_id"] == backup.snapshot_id
    assert list(scratch.iterdir()) == []


def test_restored_files_that_differ_from_the_snapshot_fail_the_drill_with_the_differences(
        drilled_volume, scratch, sent_messages, monkeypatch):
    from backups.engine import drill as engine_drill

    real_restore = engine_drill.restore

    def restore_onto_a_failing_disk(repo, snapshot, target, **options):
        result = real_restore(repo, snapshot, target, **options)
        conf = os.path.join(target, b"etc", b"app.conf")
        with open(conf, "r+b") as handle:
            handle.write(b"S")  # one byte changed after the restore wrote it
        return result

    monkeypatch.setattr(engine_drill, "restore", restore_onto_a_failing_disk)
    job = services.start_drill(back_up(drilled_volume))
    assert runners.execute(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error_code == "drill_mismatch" and "1 place(s)" in job.error
    assert job.result["drill"]["differences"] == [
        {"path": "/etc/app.conf", "problem": "content differs in chunk 1 of 1 (bytes 0-9)"}]
    assert list(scratch.iterdir()) == []


def test_a_cancelled_drill_removes_its_scratch(make_volume, scratch, use_runner, sent_messages):
    volume = make_volume("vol-big-drill", files={f"file-{index}.bin": os.urandom(1024 * 1024) for index in range(3)})
    backup = back_up(volume)
    cancel_at_first_progress(use_runner, JobKind.DRILL, drill_runner.run)
    job = services.start_drill(backup)
    assert runners.execute(job.pk) == JobStatus.CANCELLED
    assert list(scratch.iterdir()) == []


def test_a_scratch_folder_inside_a_volume_pool_is_refused(volume, settings, sent_messages):
    settings.DRILL_SCRATCH_DIR = Path(settings.VOLUME_ROOT) / "drills"
    job = services.start_drill(back_up(volume))
    assert runners.execute(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error_code == "drill_scratch_unsafe" and "inside the volume pool" in job.error
    assert not (Path(settings.VOLUME_ROOT) / "drills").exists()


def test_a_drill_removes_the_scratch_folders_dead_drills_left_and_nothing_else(volume, scratch, sent_messages):
    backup = back_up(volume)
    dead = Job.objects.create(kind=JobKind.DRILL, status=JobStatus.FAILED, params={"backup": str(backup.pk)})
    running = Job.objects.create(kind=JobKind.DRILL, status=JobStatus.RUNNING, params={"backup": str(backup.pk)})
    other_kind = Job.objects.create(kind=JobKind.VERIFY, status=JobStatus.FAILED)
    for name in (dead.pk, running.pk, other_kind.pk, uuid.uuid4(), "notes"):
        (scratch / str(name)).mkdir(parents=True)
        (scratch / str(name) / "file").write_bytes(b"x")
    job = services.start_drill(backup)
    assert runners.execute(job.pk) == JobStatus.SUCCEEDED
    assert str(dead.pk) not in {path.name for path in scratch.iterdir()}
    assert len(list(scratch.iterdir())) == 4  # the running drill's, another kind's, an unknown id, "notes"
