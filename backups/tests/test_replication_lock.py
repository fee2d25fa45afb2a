"""Immutable replicas: a replication target with `lock_mode` / `lock_days` gets every copy
locked with S3 Object Lock (a moto_server bucket created with Object Lock), so the off-site
copy survives an attacker who holds the platform's credentials.

The story: a replicate job writes the copy locked (packs, index, manifest); the next one,
for a backup that reuses the data, extends the old packs; a prune of the primary then
forgets the first backup, and the replicate job that follows keeps the locked copy in the
replica, names it in its result and still succeeds; the kept copy restores byte for byte;
once its lock is over, the next run removes it.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from django.utils import timezone

from backups import runners, services
from backups.engine.objectlock import EXTENSION_SLACK, forget_known_retention
from backups.models import Job, JobStatus, Policy
from backups.replication_targets import all_targets, engine_backend, replica_secrets
from backups.storage import forget_cached_repository
from backups.tests.test_object_lock import operator  # noqa: F401 (a fixture)
from backups.tests.test_replication import FILES, back_up, configure_targets, replicate, tree

pytestmark = pytest.mark.django_db

LOCK_DAYS = 30


@pytest.fixture(autouse=True)
def _fresh_retention_cache():
    forget_known_retention()
    yield
    forget_known_retention()


def _target(settings, s3_server, bucket: str, **lock) -> None:
    configure_targets(settings, {"vault": {
        "location": f"s3://{bucket}/replica", "endpoint_url": s3_server.endpoint_url, "region": s3_server.region,
        "access_key_id": s3_server.access_key_id, "secret_access_key": s3_server.secret_access_key, **lock}})


@pytest.fixture
def vault(settings, own_repository, s3_server):
    """Primary: a directory repository, unlocked; replica: an Object Lock bucket, and a target
    that locks its copies for LOCK_DAYS days in governance mode."""
    bucket = s3_server.create_bucket(object_lock=True)
    _target(settings, s3_server, bucket, lock_mode="governance", lock_days=LOCK_DAYS)
    return bucket


def head(s3_server, bucket: str, name: str) -> dict:
    return s3_server.client().head_object(Bucket=bucket, Key=f"replica/{name}")


def replica_names(s3_server, bucket: str, prefix: str) -> list[str]:
    answer = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"replica/{prefix}")
    return sorted(item["Key"].removeprefix("replica/") for item in answer.get("Contents", ()))


def locked_until(s3_server, bucket: str, name: str) -> datetime.datetime:
    answer = head(s3_server, bucket, name)
    assert answer.get("ObjectLockMode") == "GOVERNANCE", (name, answer.get("ObjectLockMode"))
    return answer["ObjectLockRetainUntilDate"]


def open_replica_repository():
    from backups.engine.repository import Repository

    target = all_targets()["vault"]
    return Repository.open(engine_backend(target), replica_secrets(target)[0])


def test_an_immutable_replica_locks_its_copies_and_keeps_them_when_the_primary_forgets(
        vault, s3_server, make_volume, api, operator, tmp_path, sent_messages):
    policy = Policy.objects.create(name="replicated", replication_target="vault", retention={"keep_last": 1})
    volume = make_volume("vol-r", files=FILES, policy=policy)
    older = back_up(volume)
    started = timezone.now()
    replicate(policy)

    # Every object the copy wrote is locked for the target's days.
    first_packs = replica_names(s3_server, vault, "data/")
    first_indexes = replica_names(s3_server, vault, "index/")
    assert first_packs and first_indexes
    wanted = started + datetime.timedelta(days=LOCK_DAYS)
    for name in [*first_packs, *first_indexes, f"snapshots/{older.snapshot_id}"]:
        until = locked_until(s3_server, vault, name)
        assert wanted - datetime.timedelta(minutes=1) <= until <= wanted + datetime.timedelta(minutes=5), name
    for name in ["config", *replica_names(s3_server, vault, "keys/")]:
        assert locked_until(s3_server, vault, name) >= wanted - datetime.timedelta(minutes=1), name

    # The next backup reuses every pack (nothing changed); its copy writes none, and a fresh
    # worker (nothing remembered) extends the old packs to the new copy's date and more.
    newer = back_up(volume)
    forget_known_retention()
    forget_cached_repository()
    second = replicate(policy)
    assert list(second.result["copy"]["copied"]) == [newer.snapshot_id]
    assert replica_names(s3_server, vault, "data/") == first_packs
    extended = started + datetime.timedelta(days=LOCK_DAYS) + EXTENSION_SLACK
    for name in first_packs:
        assert locked_until(s3_server, vault, name) >= extended - datetime.timedelta(minutes=1), name
    (extension_index,) = [name for name in replica_names(s3_server, vault, "index/") if name not in first_indexes]
    assert locked_until(s3_server, vault, extension_index) >= extended - datetime.timedelta(minutes=1)

    # A prune of the primary forgets the older backup; the replica cannot drop its locked copy,
    # and says so instead of failing the job.
    prune = services.start_prune(policy=policy)
    assert runners.execute(prune.pk) == JobStatus.SUCCEEDED, Job.objects.get(pk=prune.pk).error
    third = replicate(policy)
    forgotten = third.result["forgotten"]
    assert forgotten["snapshots"] == [] and list(forgotten["locked"]) == [older.snapshot_id]
    locked_date = datetime.datetime.fromisoformat(forgotten["locked"][older.snapshot_id])
    assert locked_date == locked_until(s3_server, vault, f"snapshots/{older.snapshot_id}")
    shown = api("read").get(f"/api/v1/jobs/{third.pk}").json()
    assert shown["result"]["forgotten"]["locked"] == forgotten["locked"]
    page = operator.get(f"/admin/backups/job/{third.pk}/progress/").content.decode()
    assert f"<code>{older.snapshot_id[:8]}</code> (until {forgotten['locked'][older.snapshot_id][:16]})" in page

    # The kept copy is whole: it restores byte for byte from the replica.
    replica = open_replica_repository()
    try:
        assert sorted(replica.list_snapshot_ids()) == sorted([older.snapshot_id, newer.snapshot_id])
        replica.restore(older.snapshot_id, tmp_path / "restored")
    finally:
        replica.close()
    assert tree(tmp_path / "restored") == tree(Path(volume.path))

    # Once the copy's lock is over (here: a governance bypass takes it off the manifest, as
    # the date passing would), the next run removes it; the data the newer copy shares stays.
    s3_server.client().put_object_retention(Bucket=vault, Key=f"replica/snapshots/{older.snapshot_id}",
                                            Retention={}, BypassGovernanceRetention=True)
    fourth = replicate(policy)
    assert fourth.result["forgotten"]["snapshots"] == [older.snapshot_id]
    assert fourth.result["forgotten"]["locked"] == {}
    replica = open_replica_repository()
    try:
        assert replica.list_snapshot_ids() == [newer.snapshot_id]
        replica.restore(newer.snapshot_id, tmp_path / "restored-newer")
    finally:
        replica.close()
    assert tree(tmp_path / "restored-newer") == tree(Path(volume.path))


def test_a_locked_target_whose_bucket_cannot_lock_fails_the_job_and_writes_nothing(
        settings, own_repository, s3_server, make_volume, sent_messages):
    bucket = s3_server.create_bucket()  # no Object Lock
    _target(settings, s3_server, bucket, lock_mode="compliance", lock_days=7)
    policy = Policy.objects.create(name="replicated", replication_target="vault")
    back_up(make_volume("vol-r", files=FILES, policy=policy))
    job = services.start_replicate(policy=policy)
    assert runners.execute(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error_code == "object_lock_unsupported" and bucket in job.error
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_the_target_list_shows_the_lock(api, settings):
    configure_targets(settings, {"plain": {"location": "s3://plain"},
                                 "vault": {"location": "s3://vault/replica", "lock_mode": "compliance",
                                           "lock_days": 365}})
    results = api("read").get("/api/v1/replication-targets").json()["results"]
    assert [(row["name"], row["lock_mode"], row["lock_days"]) for row in results] == [
        ("plain", None, None), ("vault", "compliance", 365)]
