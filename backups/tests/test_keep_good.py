"""keep_good: retention never forgets a volume's newest good snapshots (verified or restored
intact since they were made), and a prune dry run says which it keeps for that reason."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups import good_backups, runners, services
from backups.models import Backup, BackupStatus, BackupTrigger, Job, JobKind, JobStatus, PackVerification, Policy
from backups.storage import open_repository

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def completed(volume, hours_ago: float, snapshot_id: str) -> Backup:
    return Backup.objects.create(volume=volume, volume_name=volume.name, status=BackupStatus.COMPLETED,
                                 snapshot_id=snapshot_id, completed_at=NOW - timedelta(hours=hours_ago))


def finished_job(kind: str, hours_ago: float, *, status: str = JobStatus.SUCCEEDED, params=None, result=None) -> Job:
    at = NOW - timedelta(hours=hours_ago)
    return Job.objects.create(kind=kind, status=status, queue="maintenance", params=params or {},
                              result=result or {}, started_at=at, finished_at=at + timedelta(minutes=5))


def verify_report(hours_ago: float, *, percent: float = 10, broken=(), status: str = JobStatus.SUCCEEDED) -> Job:
    return finished_job(JobKind.VERIFY, hours_ago, status=status,
                        result={"read_data_percent": percent, "report": {"broken_snapshots": list(broken)}})


def judged(volume, count: int = 10) -> dict[str, str]:
    return {item.backup.snapshot_id: item.evidence.how for item in good_backups.last_good_backups(volume.pk, count)}


def test_a_data_reading_verify_after_a_backup_makes_it_good(make_volume):
    volume = make_volume("vol-judge")
    completed(volume, 30, "before")
    completed(volume, 1, "after")  # newer than every verify: not judged yet
    verify_report(20)
    verify_report(10, percent=0)  # reads no data: says nothing good
    finished_job(JobKind.VERIFY, 5, status=JobStatus.FAILED, result={"read_data_percent": 10})  # storage down
    assert judged(volume) == {"before": "verified"}


def test_a_snapshot_a_verify_named_broken_stays_bad_until_a_whole_restore_succeeds(make_volume):
    volume = make_volume("vol-broken")
    broken = completed(volume, 30, "broken")
    partly = completed(volume, 29, "partly")
    verify_report(20, broken=["broken", "partly"], status=JobStatus.FAILED)
    verify_report(10)  # a later verify not naming them may simply not have re-read the damage
    assert judged(volume) == {}

    finished_job(JobKind.RESTORE, 5, params={"backup": str(broken.pk)})
    finished_job(JobKind.RESTORE, 4, params={"backup": str(partly.pk), "paths": ["/etc"]})
    finished_job(JobKind.RESTORE, 3, status=JobStatus.FAILED, params={"backup": str(partly.pk)})
    finished_job(JobKind.DRILL, 25, params={"backup": str(partly.pk)})  # before it was named broken
    assert judged(volume) == {"broken": "restored"}


def test_the_newest_good_ones_are_chosen_and_forgotten_or_unfinished_ones_never(make_volume):
    volume = make_volume("vol-newest")
    for hours in (50, 40, 30):
        completed(volume, hours, f"snap-{hours}")
    Backup.objects.filter(snapshot_id="snap-30").update(forgotten_at=NOW)
    Backup.objects.create(volume=volume, volume_name=volume.name, status=BackupStatus.FAILED)
    drilled = completed(volume, 20, "drilled")
    finished_job(JobKind.DRILL, 1, params={"backup": str(drilled.pk)})
    verify_report(10)
    assert [item.backup.snapshot_id for item in good_backups.last_good_backups(volume.pk, 2)] == ["drilled", "snap-40"]
    assert judged(volume)["drilled"] == "drilled"
    assert good_backups.last_good_backups(volume.pk, 0) == []


def back_up(volume) -> Backup:
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED
    return Backup.objects.get(pk=backup.pk)


def prune(policy, *, dry_run: bool) -> dict:
    job = services.start_prune(policy=policy, dry_run=dry_run)
    assert runners.execute(job.pk) == JobStatus.SUCCEEDED
    return Job.objects.get(pk=job.pk).result


def test_prune_keeps_the_last_verified_snapshot_that_keep_last_would_forget(make_volume, own_repository,
                                                                            sent_messages):
    policy = Policy.objects.create(name="keep-one-good-one", retention={"keep_last": 1}, keep_good=1)
    volume = make_volume("vol-good", files={"data.bin": os.urandom(200_000)}, policy=policy)
    good = back_up(volume)
    verify = services.start_verify(read_data_percent=5)
    assert runners.execute(verify.pk) == JobStatus.SUCCEEDED
    Path(volume.path, "data.bin").write_bytes(os.urandom(200_000))
    unverified = back_up(volume)
    Path(volume.path, "data.bin").write_bytes(os.urandom(200_000))
    newest = back_up(volume)

    dry = prune(policy, dry_run=True)
    assert dry["forgotten"] == {"vol-good": [unverified.snapshot_id]}
    assert dry["keep_good"] == 1
    assert dry["kept_good"] == {"vol-good": [{"snapshot_id": good.snapshot_id, "backup": str(good.pk), "how": "verified",
                                              "job": str(verify.pk), "only_reason": True}]}
    assert Backup.objects.get(pk=unverified.pk).forgotten_at is None

    packs_before = set(PackVerification.objects.values_list("pack_id", flat=True))
    prune(policy, dry_run=False)
    assert Backup.objects.get(pk=unverified.pk).forgotten_at is not None
    assert Backup.objects.filter(pk__in=[good.pk, newest.pk], forgotten_at__isnull=True).count() == 2
    repository = open_repository()
    try:
        assert {snapshot.id for snapshot in repository.snapshots()} == {good.snapshot_id, newest.snapshot_id}
        present = set(repository.list_packs())
    finally:
        repository.close()
    # The packs only the forgotten snapshot used are gone, and so are their catalog rows.
    assert packs_before - present
    assert set(PackVerification.objects.values_list("pack_id", flat=True)) == present

    Policy.objects.filter(pk=policy.pk).update(keep_good=0)
    off = prune(Policy.objects.get(pk=policy.pk), dry_run=True)
    assert (off["forgotten"], off["kept_good"]) == ({"vol-good": [good.snapshot_id]}, {})
