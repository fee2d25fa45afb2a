"""Replication to a second target, in-process against real storage: a directory target and
a second bucket of the session's moto_server (real S3 over HTTP).

The story the tests tell: a policy names a target; a backup job, then a replicate job copy
the snapshot into a replica that keeps its id; a second run copies nothing; the lag metric
goes from the backup's age to 0; and when the primary bucket is gone, pointing the backups
storage at the replica restores the backup byte for byte, with no catalog change.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from backups import runners, services
from backups.models import Backup, BackupReplica, BackupTrigger, Job, JobKind, JobStatus, Policy
from backups.engine.errors import EngineError
from backups.replication_targets import all_targets, engine_backend, replica_secrets
from backups.storage import forget_cached_repository, open_repository
from monitoring.collectors import CatalogCollector
from storage_platform.config import replication_targets
from volumes.models import Volume

pytestmark = pytest.mark.django_db

FILES = {"a.txt": b"alpha" * 1000, "dir/b.bin": os.urandom(300_000), "dir/empty": b""}
ROOT = Path(__file__).resolve().parents[2]


def configure_targets(settings, environ: dict) -> None:
    """Targets as the settings module builds them, from the environment's JSON."""
    import json

    settings.REPLICATION_TARGETS = replication_targets({"REPLICATION_TARGETS": json.dumps(environ)})


@pytest.fixture
def directory_target(settings, own_repository, tmp_path):
    configure_targets(settings, {"dr": {"location": str(tmp_path / "replica")}})
    return tmp_path / "replica"


@pytest.fixture
def s3_target(settings, own_s3_repository, s3_server):
    """Primary: one bucket (`own_s3_repository`); replica: another bucket of the same server,
    with its own credentials entry (a client of its own)."""
    bucket = s3_server.create_bucket()
    configure_targets(settings, {"offsite": {
        "location": f"s3://{bucket}/replica", "endpoint_url": s3_server.endpoint_url, "region": s3_server.region,
        "access_key_id": s3_server.access_key_id, "secret_access_key": s3_server.secret_access_key}})
    return bucket


def back_up(volume) -> Backup:
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED, Job.objects.get(pk=backup.job_id).error
    backup.refresh_from_db()
    return backup


def replicate(policy) -> Job:
    job = services.start_replicate(policy=policy)
    assert job.kind == JobKind.REPLICATE and job.queue == "maintenance"
    outcome = runners.execute(job.pk)
    job.refresh_from_db()
    assert outcome == JobStatus.SUCCEEDED, (job.error_code, job.error)
    return job


def replica_snapshot_ids(target_name: str) -> set[str]:
    from backups.engine.repository import Repository

    target = all_targets()[target_name]
    replica = Repository.open(engine_backend(target), replica_secrets(target)[0])
    try:
        return set(replica.list_snapshot_ids())
    finally:
        replica.close()


def lag(target: str, now: datetime.datetime) -> float | None:
    for family in CatalogCollector(clock=lambda: now).collect():
        if family.name == "backup_replication_lag_seconds":
            for sample in family.samples:
                if sample.labels == {"target": target}:
                    return sample.value
    return None


def tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("target_fixture, name", [("directory_target", "dr"), ("s3_target", "offsite")])
def test_a_replicate_job_copies_each_backup_once_and_the_lag_follows(request, target_fixture, name, make_volume,
                                                                     api, sent_messages):
    request.getfixturevalue(target_fixture)
    policy = Policy.objects.create(name="replicated", replication_target=name)
    volume = make_volume("vol-r", files=FILES, policy=policy)
    other = make_volume("vol-other", files={"x": b"not replicated"})  # the default policy: no target
    first, second = back_up(volume), back_up(volume)
    back_up(other)
    later = timezone.now() + datetime.timedelta(hours=2)
    assert lag(name, later) == pytest.approx((later - first.completed_at).total_seconds())

    job = replicate(policy)
    assert sorted(job.result["copy"]["copied"]) == sorted([first.snapshot_id, second.snapshot_id])
    assert job.result["copy"]["bytes_copied"] > 0 and job.progress_done > 0
    assert replica_snapshot_ids(name) == {first.snapshot_id, second.snapshot_id}  # the ids carry over
    assert set(BackupReplica.objects.filter(target=name).values_list("backup_id", flat=True)) == {first.pk, second.pk}
    assert lag(name, later) == 0

    again = replicate(policy)
    assert again.result["copy"]["copied"] == {} and again.result["copy"]["blobs_copied"] == 0
    assert again.result["replicas"] == {"added": 0, "removed": 0}

    body = api("read").get(f"/api/v1/backups/{first.pk}").json()
    assert [replica["target"] for replica in body["replicas"]] == [name]
    listed = api("read").get("/api/v1/replication-targets").json()
    assert listed["count"] == 1 and listed["results"][0]["name"] == name
    assert listed["results"][0]["policies"] == ["replicated"] and listed["results"][0]["lag_seconds"] == 0

    third = back_up(volume)  # new since the last run: the lag counts from it
    assert lag(name, later) == pytest.approx((later - third.completed_at).total_seconds())


def test_the_replica_follows_the_primarys_retention(directory_target, make_volume, sent_messages):
    policy = Policy.objects.create(name="replicated", replication_target="dr", retention={"keep_last": 1})
    volume = make_volume("vol-r", files=FILES, policy=policy)
    older, newer = back_up(volume), back_up(volume)
    replicate(policy)
    prune = services.start_prune(policy=policy)
    assert runners.execute(prune.pk) == JobStatus.SUCCEEDED
    assert Backup.objects.get(pk=older.pk).forgotten_at is not None

    job = replicate(policy)
    assert job.result["forgotten"]["snapshots"] == [older.snapshot_id]
    assert replica_snapshot_ids("dr") == {newer.snapshot_id}
    assert list(BackupReplica.objects.values_list("backup_id", flat=True)) == [newer.pk]


def test_a_snapshot_the_primary_lost_is_never_removed_from_the_replica(directory_target, make_volume,
                                                                       sent_messages):
    """The catalog still counts the backup: the replica keeps the copy that now is the only one."""
    policy = Policy.objects.create(name="replicated", replication_target="dr")
    backup = back_up(make_volume("vol-r", files=FILES, policy=policy))
    replicate(policy)
    repository = open_repository()
    repository.delete_snapshot(backup.snapshot_id)  # lost from the primary, not forgotten by retention
    repository.close()

    job = replicate(policy)
    assert job.result["forgotten"]["snapshots"] == [] and job.result["unavailable"] == [backup.snapshot_id]
    assert replica_snapshot_ids("dr") == {backup.snapshot_id}


def test_a_lost_replica_is_started_again_and_filled(directory_target, make_volume, sent_messages):
    import shutil

    policy = Policy.objects.create(name="replicated", replication_target="dr")
    backup = back_up(make_volume("vol-r", files=FILES, policy=policy))
    replicate(policy)
    shutil.rmtree(directory_target)
    job = replicate(policy)
    assert list(job.result["copy"]["copied"]) == [backup.snapshot_id]
    assert replica_snapshot_ids("dr") == {backup.snapshot_id}


def test_a_target_holding_an_unrelated_repository_fails_the_job_clearly(directory_target, make_volume, settings,
                                                                        sent_messages):
    from backups.engine.backends import LocalBackend
    from backups.engine.repository import Repository

    Repository.init(LocalBackend(str(directory_target)), settings.REPOSITORY_KEY).close()
    policy = Policy.objects.create(name="replicated", replication_target="dr")
    back_up(make_volume("vol-r", files=FILES, policy=policy))
    job = services.start_replicate(policy=policy)
    assert runners.execute(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error_code == "replica_not_related" and job.attempts == 1
    assert not BackupReplica.objects.exists()


def test_the_primary_bucket_is_gone_fail_over_to_the_replica(s3_target, s3_server, own_s3_repository, make_volume,
                                                             api, settings, tmp_path, sent_messages):
    """The runbook's drill (docs/runbook-primary-bucket-lost.md): every object of the primary
    bucket and the bucket itself deleted; the backups storage pointed at the replica; the
    catalog untouched; a backup restores byte-identically through the API, and through the
    engine CLI with the escrowed key file."""
    policy = Policy.objects.create(name="replicated", replication_target="offsite")
    volume = make_volume("vol-r", files=FILES, policy=policy)
    backup = back_up(volume)
    replicate(policy)
    catalog_before = list(Backup.objects.order_by("pk").values_list("pk", "snapshot_id", "status", "forgotten_at"))

    client = s3_server.client()
    primary = own_s3_repository.name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=primary):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=primary, Key=item["Key"])
    client.delete_bucket(Bucket=primary)
    forget_cached_repository()
    with pytest.raises(EngineError) as lost:  # and no empty repository is made in its place
        open_repository()
    assert lost.value.code == "repository_not_found"

    # Fail over: the backups storage now names the replica's bucket and prefix.
    options = dict(settings.STORAGES["backups"]["OPTIONS"], bucket_name=s3_target, location="replica")
    settings.STORAGES = {**settings.STORAGES, "backups": {**settings.STORAGES["backups"], "OPTIONS": options}}
    forget_cached_repository()

    response = api("admin").post(f"/api/v1/backups/{backup.pk}/restore", {"new_volume_name": "vol-r-restored"},
                                 format="json")
    assert response.status_code == 202, response.json()
    assert runners.execute(response.json()["id"]) == JobStatus.SUCCEEDED, Job.objects.get(pk=response.json()["id"]).error
    restored = Volume.objects.get(name="vol-r-restored")
    assert tree(Path(restored.path)) == tree(Path(volume.path))
    assert list(Backup.objects.order_by("pk").values_list("pk", "snapshot_id", "status", "forgotten_at")) == catalog_before

    key_file = tmp_path / "repository.key"
    key_file.write_text(settings.REPOSITORY_KEY + "\n")
    environment = {**os.environ, "S3_ENDPOINT_URL": s3_server.endpoint_url, "S3_REGION": s3_server.region,
                   "S3_ACCESS_KEY_ID": s3_server.access_key_id, "S3_SECRET_ACCESS_KEY": s3_server.secret_access_key}
    cli = subprocess.run([sys.executable, "-m", "backups.engine", "restore", "--repo", f"s3://{s3_target}/replica",
                          "--key-file", str(key_file), backup.snapshot_id, str(tmp_path / "cli-restore")],
                         cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert tree(tmp_path / "cli-restore") == tree(Path(volume.path))


def test_the_replica_follows_a_key_rotation_of_the_primary(directory_target, make_volume, settings, sent_messages):
    """After a rotation the platform opens the primary with the stored secret until the
    operator makes it REPOSITORY_KEY; the next replicate job gives the replica a key object
    for it, so the replica keeps opening when the old secret is gone."""
    from backups import repository_keys

    policy = Policy.objects.create(name="replicated", replication_target="dr")
    back_up(make_volume("vol-r", files=FILES, policy=policy))
    replicate(policy)
    rotated = repository_keys.rotate(actor="test")
    replicate(policy)
    settings.REPOSITORY_KEY = rotated.secret  # the operator copied the new secret into place
    forget_cached_repository()
    job = replicate(policy)
    assert job.result["copy"]["copied"] == {}


def test_a_replica_key_file_wraps_the_replica_key(settings, own_repository, tmp_path, make_volume, sent_messages):
    """A target with its own key_file: the replica opens with that secret, not REPOSITORY_KEY."""
    from backups.engine.backends import LocalBackend
    from backups.engine.errors import WrongKey
    from backups.engine.repository import Repository

    key_file = tmp_path / "replica.key"
    key_file.write_text("a separate secret for the off-site copy\n")
    configure_targets(settings, {"dr": {"location": str(tmp_path / "replica"), "key_file": str(key_file)}})
    policy = Policy.objects.create(name="replicated", replication_target="dr")
    backup = back_up(make_volume("vol-r", files=FILES, policy=policy))
    replicate(policy)
    backend = LocalBackend(str(tmp_path / "replica"))
    with pytest.raises(WrongKey):
        Repository.open(backend, settings.REPOSITORY_KEY)
    replica = Repository.open(backend, "a separate secret for the off-site copy")
    assert replica.list_snapshot_ids() == [backup.snapshot_id]
    replica.close()


# --- API: validation and conflicts ------------------------------------------------------------
def test_policy_replication_fields_are_validated(api, settings, tmp_path):
    configure_targets(settings, {"dr": {"location": str(tmp_path / "replica")}})
    unknown = api("admin").post("/api/v1/policies", {"name": "p1", "replication_target": "nowhere"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_replication_target"
    assert "dr" in unknown.json()["message"]
    bad_cron = api("admin").post("/api/v1/policies", {"name": "p2", "replication_target": "dr",
                                                      "replication_schedule": "every hour"}, format="json")
    assert bad_cron.status_code == 400 and "replication_schedule" in bad_cron.json()["detail"]
    created = api("admin").post("/api/v1/policies", {"name": "p3", "replication_target": "dr"}, format="json")
    assert created.status_code == 201 and created.json()["replication_schedule"] == "30 * * * *"
    manual = api("admin").post("/api/v1/policies", {"name": "p4", "replication_target": "dr",
                                                    "replication_schedule": ""}, format="json")
    assert manual.status_code == 201 and manual.json()["replication_schedule"] == ""


def test_replicate_a_policy_without_a_target_is_a_conflict(api, sent_messages):
    policy = Policy.objects.create(name="plain")
    response = api("backup").post(f"/api/v1/policies/{policy.pk}/replicate")
    assert response.status_code == 409 and response.json()["code"] == "no_replication_target"
    assert not Job.objects.filter(kind=JobKind.REPLICATE).exists() and sent_messages == []


def test_replicate_a_policy_whose_target_was_removed_from_the_settings_is_a_400(api, settings, sent_messages):
    settings.REPLICATION_TARGETS = {}
    policy = Policy.objects.create(name="orphaned", replication_target="gone")
    response = api("backup").post(f"/api/v1/policies/{policy.pk}/replicate")
    assert response.status_code == 400 and response.json()["code"] == "unknown_replication_target"


def test_replicate_answers_the_active_job_instead_of_a_second(api, directory_target, sent_messages):
    policy = Policy.objects.create(name="replicated", replication_target="dr")
    first = api("backup").post(f"/api/v1/policies/{policy.pk}/replicate")
    second = api("backup").post(f"/api/v1/policies/{policy.pk}/replicate")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"] and first.json()["kind"] == "replicate"
    assert Job.objects.filter(kind=JobKind.REPLICATE).count() == 1


def test_the_target_list_never_shows_credentials(api, settings, tmp_path):
    key_file = tmp_path / "replica.key"
    key_file.write_text("replica secret")
    configure_targets(settings, {"offsite": {"location": "s3://bucket/prefix", "endpoint_url": "https://s3.example",
                                             "access_key_id": "AKIAEXAMPLE", "secret_access_key": "very-secret",
                                             "key_file": str(key_file)}})
    response = api("read").get("/api/v1/replication-targets")
    assert response.status_code == 200
    assert response.json()["results"] == [{"name": "offsite", "kind": "s3", "location": "s3://bucket/prefix",
                                           "endpoint_url": "https://s3.example", "lock_mode": None, "lock_days": None,
                                           "policies": [], "lag_seconds": 0.0}]
    for secret in ("AKIAEXAMPLE", "very-secret", "replica secret", str(key_file)):
        assert secret not in response.content.decode()


def test_replicating_is_the_backup_verb(scoped_api, directory_target, sent_messages):
    policy = Policy.objects.create(name="replicated", replication_target="dr")
    refused = scoped_api("backup", name="verifier", verbs=["verify"]).post(f"/api/v1/policies/{policy.pk}/replicate")
    assert refused.status_code == 403 and refused.json()["code"] == "verb_not_in_scope"
    allowed = scoped_api("backup", name="backer", verbs=["backup"]).post(f"/api/v1/policies/{policy.pk}/replicate")
    assert allowed.status_code == 202 and allowed.json()["kind"] == "replicate"
    limited = scoped_api("backup", name="limited", volumes=["db-*"]).post(f"/api/v1/policies/{policy.pk}/replicate")
    assert limited.status_code == 403 and limited.json()["code"] == "outside_token_scope"


def test_a_snapshot_pruned_between_the_listing_and_the_copy_is_left_out(directory_target, make_volume, monkeypatch,
                                                                        sent_messages):
    from backups.engine.repository import Repository

    policy = Policy.objects.create(name="replicated", replication_target="dr")
    volume = make_volume("vol-r", files=FILES, policy=policy)
    kept, pruned = back_up(volume), back_up(volume)
    real_copy_to = Repository.copy_to
    calls = []

    def prune_first(self, target, snapshot_ids=None, **options):
        if not calls:  # a prune of the primary wins the race once
            self.delete_snapshot(pruned.snapshot_id)
        calls.append(list(snapshot_ids))
        return real_copy_to(self, target, snapshot_ids, **options)

    monkeypatch.setattr(Repository, "copy_to", prune_first)
    job = replicate(policy)
    assert calls == [sorted([kept.snapshot_id, pruned.snapshot_id]), [kept.snapshot_id]]
    assert list(job.result["copy"]["copied"]) == [kept.snapshot_id] and job.result["unavailable"] == [pruned.snapshot_id]


def test_a_cancelled_replicate_job_stops_and_the_next_one_copies_the_rest(directory_target, make_volume, use_runner,
                                                                         sent_messages):
    from backups.runners import replicate as replicate_runner
    from backups.tests.test_runners import cancel_at_first_progress

    policy = Policy.objects.create(name="replicated", replication_target="dr")
    volume = make_volume("vol-r", files=FILES, policy=policy)
    first = back_up(volume)
    (Path(volume.path) / "more.bin").write_bytes(os.urandom(400_000))
    second = back_up(volume)
    cancel_at_first_progress(use_runner, JobKind.REPLICATE, replicate_runner.run)
    job = services.start_replicate(policy=policy)
    assert runners.execute(job.pk) == JobStatus.CANCELLED
    assert len(replica_snapshot_ids("dr")) < 2 and not BackupReplica.objects.exists()

    use_runner(JobKind.REPLICATE, replicate_runner.run)
    replicate(policy)
    assert replica_snapshot_ids("dr") == {first.snapshot_id, second.snapshot_id}
    assert BackupReplica.objects.count() == 2
