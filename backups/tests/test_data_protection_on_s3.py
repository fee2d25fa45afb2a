"""Restore drills, keep-N-good retention, partial restore and verification coverage with the
repository in an S3 bucket (a real moto_server over HTTP, through django-storages' client),
as most deployments run them. The same behaviour on a local repository is covered beside
each runner's own tests; these are the cases where the storage matters: what is read back,
what is deleted, and what a damaged object does."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from backups import pack_verification, runners, services
from backups.models import Backup, Job, JobStatus, PackVerification, Policy
from backups.scheduling.fanout import start_policy_verify
from backups.storage import open_repository
from backups.tests.test_keep_good import back_up, prune
from volumes.models import Volume

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _repository_in_a_bucket(own_s3_repository, sent_messages):
    return own_s3_repository


def pack_objects(bucket) -> dict[str, int]:
    """{pack id: size} of every pack object in the bucket, listed by S3 itself."""
    found = {}
    for page in bucket.client.get_paginator("list_objects_v2").paginate(Bucket=bucket.name,
                                                                        Prefix="repository/data/"):
        for item in page.get("Contents", []):
            found[item["Key"].rsplit("/", 1)[-1]] = item["Size"]
    return found


def damage_largest_pack_object(bucket) -> None:
    pack_id, _size = max(pack_objects(bucket).items(), key=lambda item: item[1])
    key = next(item["Key"] for item in bucket.client.list_objects_v2(
        Bucket=bucket.name, Prefix="repository/data/")["Contents"] if item["Key"].endswith(pack_id))
    content = bytearray(bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read())
    middle = len(content) // 2
    content[middle:middle + 16] = bytes(byte ^ 0xFF for byte in content[middle:middle + 16])
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=bytes(content))


def test_a_drill_on_s3_passes_on_a_good_backup_and_fails_once_a_pack_object_is_damaged(
        make_volume, settings, tmp_path, own_s3_repository):
    settings.DRILL_SCRATCH_DIR = tmp_path / "drills"
    volume = make_volume("vol-s3-drill", files={"data.bin": os.urandom(1024 * 1024), "etc/app.conf": b"x=1\n"})
    backup = back_up(volume)

    good = services.start_drill(backup)
    assert runners.execute(good.pk) == JobStatus.SUCCEEDED, Job.objects.get(pk=good.pk).error
    report = Job.objects.get(pk=good.pk).result["drill"]
    assert report["ok"] and report["bytes_checked"] == 1024 * 1024 + 4 and report["differences"] == []

    damage_largest_pack_object(own_s3_repository)
    damaged = services.start_drill(Backup.objects.get(pk=backup.pk))
    assert runners.execute(damaged.pk) == JobStatus.FAILED
    damaged.refresh_from_db()
    assert damaged.error_code == "drill_restore_failed"
    assert damaged.result["cause"]["code"] == "integrity_error"
    assert list((tmp_path / "drills").iterdir()) == []  # nothing left behind on the worker


def test_keep_good_on_s3_keeps_the_verified_snapshot_and_deletes_only_the_forgotten_ones_objects(
        make_volume, own_s3_repository):
    policy = Policy.objects.create(name="s3-keep-good", retention={"keep_last": 1}, keep_good=1)
    volume = make_volume("vol-s3-good", files={"data.bin": os.urandom(200_000)}, policy=policy)
    good = back_up(volume)
    verify = services.start_verify(read_data_percent=100)
    assert runners.execute(verify.pk) == JobStatus.SUCCEEDED
    Path(volume.path, "data.bin").write_bytes(os.urandom(200_000))
    unverified = back_up(volume)
    Path(volume.path, "data.bin").write_bytes(os.urandom(200_000))
    newest = back_up(volume)
    before = pack_objects(own_s3_repository)

    dry = prune(policy, dry_run=True)
    assert dry["forgotten"] == {"vol-s3-good": [unverified.snapshot_id]}
    assert [kept["snapshot_id"] for kept in dry["kept_good"]["vol-s3-good"]] == [good.snapshot_id]
    assert pack_objects(own_s3_repository) == before  # a dry run deletes nothing

    prune(policy, dry_run=False)
    after = pack_objects(own_s3_repository)
    assert set(before) - set(after), "the packs only the forgotten snapshot used are deleted from the bucket"
    assert set(PackVerification.objects.values_list("pack_id", flat=True)) == set(after)
    repository = open_repository()
    try:
        assert {snapshot.id for snapshot in repository.snapshots()} == {good.snapshot_id, newest.snapshot_id}
    finally:
        repository.close()
    # Both kept backups still restore whole from the bucket.
    for kept in (good, newest):
        job = services.start_drill(Backup.objects.get(pk=kept.pk))
        assert runners.execute(job.pk) == JobStatus.SUCCEEDED


def test_a_partial_restore_from_s3_brings_back_only_the_named_paths(make_volume):
    source = make_volume("vol-s3-paths", files={"etc/app.conf": b"conf", "data/a/1.bin": b"one",
                                                "data/b.bin": b"b", "top.txt": b"top"})
    backup = back_up(source)
    job = services.start_restore(backup, new_volume_name="vol-s3-paths-copy", paths=["etc/app.conf", "data/a"])
    assert runners.execute(job.pk) == JobStatus.SUCCEEDED, Job.objects.get(pk=job.pk).error
    restored = Path(Volume.objects.get(name="vol-s3-paths-copy").path)
    assert {str(path.relative_to(restored)): path.read_bytes() for path in restored.rglob("*") if path.is_file()} \
        == {"etc/app.conf": b"conf", "data/a/1.bin": b"one"}


def test_the_catalog_knows_every_pack_object_and_a_scheduled_verify_reads_the_unverified_ones(
        make_volume, settings, own_s3_repository):
    settings.VERIFY_REVERIFY_DAYS = 30
    Policy.objects.exclude(is_default=True).delete()
    Policy.objects.filter(is_default=True).update(enabled=True, verify_schedule="0 3 * * 0", verify_percent=1)
    back_up(make_volume("vol-s3-window", files={"a.bin": os.urandom(300_000), "b.bin": os.urandom(300_000)}))
    in_bucket = pack_objects(own_s3_repository)
    assert dict(PackVerification.objects.values_list("pack_id", "size_bytes")) == in_bucket
    now = datetime.now(timezone.utc)
    assert pack_verification.unverified_bytes(now).pending == sum(in_bucket.values())

    job = Job.objects.get(pk=start_policy_verify(Policy.objects.get(is_default=True).pk))
    assert runners.execute(job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    # Never-verified packs come first, whatever the percentage says.
    assert job.result["packs_verified"] == len(in_bucket)
    assert pack_verification.unverified_bytes(now) == pack_verification.UnverifiedBytes(0, 0)
