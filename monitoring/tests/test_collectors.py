"""The catalog collector: right values from the database, bounded queries, monotonic counters."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus, PackVerification, Policy
from monitoring.collectors import CatalogCollector
from monitoring.exposition import render
from monitoring.tests.factories import (
    NOW, hours_ago, make_backup, make_job, make_volume, samples, value, volume_series,
)

pytestmark = pytest.mark.django_db


def scrape(clock=lambda: NOW) -> dict:
    """A scrape through a fresh registry and collector, as a newly started process would do."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(clock=clock))
    return samples(render(registry.collect()))


def test_per_volume_values_with_several_volumes():
    fast = Policy.objects.create(name="fast", rpo_hours=2)
    fresh = make_volume("fresh", used_bytes=5 * 1024**3, size_gb=10)
    stale = make_volume("stale", policy=fast)
    never = make_volume("never", created_hours_ago=30)
    newborn = make_volume("newborn", created_hours_ago=1)
    make_backup(fresh, finished_hours_ago=30)
    make_backup(fresh, finished_hours_ago=1)
    make_backup(stale, finished_hours_ago=3)
    make_backup(stale, BackupStatus.FAILED, finished_hours_ago=0.5)

    parsed = scrape()

    assert value(parsed, "storage_volume_count") == 4
    assert value(parsed, "storage_volumes", status="available") == 4
    assert value(parsed, "storage_volumes", status="error") == 0
    assert volume_series(parsed, "backup_last_success_timestamp") == {
        "fresh": hours_ago(1).timestamp(), "stale": hours_ago(3).timestamp(),
    }
    # fresh: 1 h < 24 h; stale: 3 h > policy's 2 h; never: created 30 h ago > 24 h; newborn: 1 h.
    assert volume_series(parsed, "backup_rpo_violation") == {"fresh": 0, "stale": 1, "never": 1, "newborn": 0}
    assert volume_series(parsed, "backup_last_attempt_failed") == {"fresh": 0, "stale": 1, "never": 0, "newborn": 0}
    assert volume_series(parsed, "backup_last_failure_timestamp") == {"stale": hours_ago(0.5).timestamp()}
    assert value(parsed, "volume_used_bytes", volume="fresh", volume_id=str(fresh.id)) == 5 * 1024**3
    assert value(parsed, "volume_quota_bytes", volume="fresh", volume_id=str(fresh.id)) == 10 * 1024**3
    assert value(parsed, "backup_rpo_violation", volume="newborn", volume_id=str(newborn.id)) == 0
    assert value(parsed, "backup_rpo_violation", volume="never", volume_id=str(never.id)) == 1


def test_rpo_override_wins_over_policy_and_default():
    loose = Policy.objects.create(name="loose", rpo_hours=48)
    overridden = make_volume("overridden", policy=loose, rpo_hours_override=1)
    by_policy = make_volume("by-policy", policy=loose)
    make_backup(overridden, finished_hours_ago=2)
    make_backup(by_policy, finished_hours_ago=30)

    assert volume_series(scrape(), "backup_rpo_violation") == {"overridden": 1, "by-policy": 0}


def test_rpo_violation_follows_the_age_at_scrape_time():
    volume = make_volume("ageing")
    make_backup(volume, finished_hours_ago=20)

    assert volume_series(scrape(clock=lambda: NOW), "backup_rpo_violation") == {"ageing": 0}
    assert volume_series(scrape(clock=lambda: hours_ago(-5)), "backup_rpo_violation") == {"ageing": 1}


def test_a_deleted_volume_loses_its_series_but_its_backups_still_count():
    kept = make_volume("kept")
    gone = make_volume("gone")
    make_backup(kept)
    make_backup(gone)
    assert set(volume_series(scrape(), "backup_last_success_timestamp")) == {"kept", "gone"}

    gone.delete()
    parsed = scrape()

    for name in ("backup_last_success_timestamp", "backup_rpo_violation", "volume_used_bytes", "backup_last_attempt_failed"):
        assert set(volume_series(parsed, name)) == {"kept"}, name
    assert Backup.objects.filter(volume_name="gone").exists()
    assert value(parsed, "backup_operations_total", result="success") == 2
    assert value(parsed, "storage_volume_count") == 1


def test_counters_bytes_and_duration_histogram():
    volume = make_volume("data")
    make_backup(volume, stats={"bytes_read": 1000, "bytes_new": 300, "bytes_stored": 120, "duration_seconds": 20})
    make_backup(volume, stats={"bytes_read": 2000, "bytes_new": 100, "bytes_stored": 40.5, "duration_seconds": 400})
    make_backup(volume, stats={"bytes_read": 10})  # no duration recorded: not in the histogram
    make_backup(volume, BackupStatus.FAILED, stats={"bytes_read": 99999, "duration_seconds": 5})
    make_backup(volume, BackupStatus.RUNNING)

    parsed = scrape()

    assert value(parsed, "backup_operations_total", result="success") == 3
    assert value(parsed, "backup_operations_total", result="failure") == 1
    assert value(parsed, "backup_failures_total") == 1
    assert value(parsed, "backup_bytes_read_total") == 3010
    assert value(parsed, "backup_bytes_new_total") == 400
    assert value(parsed, "backup_bytes_stored_total") == 160.5
    assert value(parsed, "backup_duration_seconds_count") == 2
    assert value(parsed, "backup_duration_seconds_sum") == 420
    assert value(parsed, "backup_duration_seconds_bucket", le="10.0") == 0
    assert value(parsed, "backup_duration_seconds_bucket", le="30.0") == 1
    assert value(parsed, "backup_duration_seconds_bucket", le="300.0") == 1
    assert value(parsed, "backup_duration_seconds_bucket", le="600.0") == 2
    assert value(parsed, "backup_duration_seconds_bucket", le="+Inf") == 2


def test_counters_never_go_down_when_rows_are_deleted_and_survive_a_restart():
    volume = make_volume("churn")
    make_backup(volume, stats={"bytes_read": 100, "bytes_stored": 10, "duration_seconds": 50})
    make_backup(volume, BackupStatus.FAILED)
    make_job(JobKind.VERIFY, JobStatus.FAILED, finished_hours_ago=1)
    before = scrape()

    Backup.objects.all().delete()  # queryset delete: signals still move the counts
    Job.objects.all().delete()
    volume.delete()
    after = scrape()  # a new collector and registry: nothing carried in memory

    counters = [
        ("backup_operations_total", {"result": "success"}), ("backup_operations_total", {"result": "failure"}),
        ("backup_failures_total", {}), ("backup_bytes_read_total", {}), ("backup_bytes_stored_total", {}),
        ("backup_duration_seconds_count", {}), ("backup_duration_seconds_sum", {}),
        ("backup_duration_seconds_bucket", {"le": "60.0"}), ("backup_duration_seconds_bucket", {"le": "+Inf"}),
        ("backup_job_finished_total", {"kind": "verify", "result": "failed"}),
    ]
    for name, labels in counters:
        assert value(after, name, **labels) == value(before, name, **labels) > 0, (name, labels)

    # New rows add on top of what was retired.
    make_backup(make_volume("again"))
    assert value(scrape(), "backup_operations_total", result="success") == 2


def test_job_queue_depth_counters_and_last_results():
    make_job(JobKind.BACKUP, JobStatus.QUEUED, created_hours_ago=2)
    make_job(JobKind.BACKUP, JobStatus.QUEUED, created_hours_ago=0.5)
    make_job(JobKind.VERIFY, JobStatus.QUEUED, created_hours_ago=5, run_after=hours_ago(-0.5))  # retry backoff
    make_job(JobKind.RESTORE, JobStatus.RUNNING, heartbeat_at=hours_ago(0.25))
    make_job(JobKind.VERIFY, JobStatus.SUCCEEDED, finished_hours_ago=5)
    make_job(JobKind.VERIFY, JobStatus.FAILED, finished_hours_ago=1)
    make_job(JobKind.PRUNE, JobStatus.FAILED, finished_hours_ago=3)
    make_job(JobKind.PRUNE, JobStatus.SUCCEEDED, finished_hours_ago=2)
    make_job(JobKind.RESTORE, JobStatus.CANCELLED, finished_hours_ago=2)

    parsed = scrape()

    assert value(parsed, "backup_jobs", state="queued", kind="backup") == 2
    assert value(parsed, "backup_jobs", state="running", kind="restore") == 1
    assert value(parsed, "backup_jobs", state="queued", kind="prune") == 0
    assert value(parsed, "backup_jobs_oldest_queued_age_seconds", kind="backup") == 2 * 3600
    assert value(parsed, "backup_jobs_oldest_queued_age_seconds", kind="verify") == 0  # may run in 30 min
    assert value(parsed, "backup_jobs_oldest_queued_age_seconds", kind="prune") == 0
    assert value(parsed, "backup_jobs_running_heartbeat_age_seconds", kind="restore") == 900
    assert value(parsed, "backup_job_finished_total", kind="verify", result="failed") == 1
    assert value(parsed, "backup_job_finished_total", kind="restore", result="cancelled") == 1
    assert value(parsed, "backup_job_last_result", kind="verify") == 0
    assert value(parsed, "backup_job_last_result", kind="prune") == 1
    assert ("backup_job_last_result", frozenset({("kind", "restore")})) not in parsed  # cancelled only
    assert value(parsed, "backup_job_last_finished_timestamp", kind="verify", result="failed") == hours_ago(1).timestamp()


def test_last_drill_per_volume_and_drill_failures():
    drilled, never = make_volume("drilled"), make_volume("never-drilled")
    make_job(JobKind.DRILL, JobStatus.SUCCEEDED, finished_hours_ago=30, volume=drilled)
    make_job(JobKind.DRILL, JobStatus.SUCCEEDED, finished_hours_ago=5, volume=drilled)
    make_job(JobKind.DRILL, JobStatus.FAILED, finished_hours_ago=1, volume=drilled)  # not a success
    make_job(JobKind.DRILL, JobStatus.FAILED, finished_hours_ago=2, volume=never)
    make_job(JobKind.DRILL, JobStatus.RUNNING, volume=never)
    make_job(JobKind.VERIFY, JobStatus.SUCCEEDED, finished_hours_ago=0.5)  # not a drill

    parsed = scrape()

    assert volume_series(parsed, "backup_last_drill_timestamp") == {"drilled": hours_ago(5).timestamp()}
    assert value(parsed, "backup_drill_failures_total") == 2
    assert value(parsed, "backup_job_last_result", kind="drill") == 0

    Job.objects.filter(kind=JobKind.DRILL, status=JobStatus.FAILED).delete()  # the count survives its rows
    assert value(scrape(), "backup_drill_failures_total") == 2
    drilled.delete()  # a deleted volume's drills leave the per-volume series with it
    assert volume_series(scrape(), "backup_last_drill_timestamp") == {}


def test_repository_size_comes_from_the_newest_job_that_recorded_it():
    make_job(JobKind.PRUNE, JobStatus.SUCCEEDED, finished_hours_ago=5, result={"repository_size_bytes": 100})
    make_job(JobKind.BACKUP, JobStatus.SUCCEEDED, finished_hours_ago=1, result={"repository_size_bytes": 250})
    make_job(JobKind.BACKUP, JobStatus.SUCCEEDED, finished_hours_ago=0.5, result={"files": 3})
    make_job(JobKind.BACKUP, JobStatus.FAILED, finished_hours_ago=0.1, result={"repository_size_bytes": 999})

    parsed = scrape()

    assert value(parsed, "backup_repository_size_bytes") == 250
    assert value(parsed, "backup_repository_size_recorded_timestamp") == hours_ago(1).timestamp()


def test_no_repository_size_series_before_any_job_recorded_one():
    assert not any(name == "backup_repository_size_bytes" for name, _ in scrape())


def test_build_info_is_always_one():
    parsed = scrape()
    [(labels, number)] = [(dict(labels), v) for (name, labels), v in parsed.items() if name == "storage_platform_build_info"]
    assert number == 1
    assert labels["version"] and labels["django_version"]


def test_unverified_bytes_are_pending_until_the_window_passes_then_overdue(settings):
    settings.VERIFY_REVERIFY_DAYS = 2
    assert value(scrape(), "backup_unverified_bytes", state="pending") == 0  # no pack known yet: 0, not absent
    PackVerification.objects.create(pack_id="new", size_bytes=100, first_seen_at=hours_ago(1))
    PackVerification.objects.create(pack_id="never-read", size_bytes=20, first_seen_at=hours_ago(49))
    PackVerification.objects.create(pack_id="read-lately", size_bytes=3, first_seen_at=hours_ago(500),
                                    verified_at=hours_ago(47))
    PackVerification.objects.create(pack_id="read-long-ago", size_bytes=4000, first_seen_at=hours_ago(500),
                                    verified_at=hours_ago(49))
    parsed = scrape()
    assert value(parsed, "backup_unverified_bytes", state="pending") == 100
    assert value(parsed, "backup_unverified_bytes", state="overdue") == 4020


def test_query_count_is_bounded_whatever_the_number_of_volumes(django_assert_max_num_queries):
    for index in range(30):
        volume = make_volume(f"vol-{index}")
        make_backup(volume)
        make_backup(volume, BackupStatus.FAILED, finished_hours_ago=0.5)
        make_job(JobKind.DRILL, JobStatus.SUCCEEDED, finished_hours_ago=2, volume=volume)
    collector = CatalogCollector(clock=lambda: NOW)
    with django_assert_max_num_queries(8):
        families = list(collector.collect())
    assert any(family.name == "backup_rpo_violation" and len(family.samples) == 30 for family in families)
    assert any(family.name == "backup_last_drill_timestamp" and len(family.samples) == 30 for family in families)


def test_replication_lag_per_target_from_the_catalog(settings, django_assert_max_num_queries):
    """The oldest completed, not forgotten backup missing from a target counts; the default
    policy's target covers volumes without a policy; a target with nothing missing is 0."""
    from backups.models import BackupReplica

    settings.REPLICATION_TARGETS = {name: {"kind": "local", "location": f"/srv/{name}"} for name in ("dr", "idle")}
    replicated = Policy.objects.create(name="replicated", replication_target="dr")
    Policy.objects.update_or_create(is_default=True, defaults={"replication_target": "dr"},
                                    create_defaults={"name": "default", "replication_target": "dr"})
    on_target = make_backup(make_volume("vol-1", policy=replicated), finished_hours_ago=30)
    BackupReplica.objects.create(backup=on_target, target="dr", replicated_at=hours_ago(29))
    make_backup(make_volume("vol-2", policy=replicated), finished_hours_ago=5)
    forgotten = make_backup(make_volume("vol-3", policy=replicated), finished_hours_ago=50)
    Backup.objects.filter(pk=forgotten.pk).update(forgotten_at=hours_ago(1))
    make_backup(make_volume("vol-4"), finished_hours_ago=7)  # no policy: the default one's target
    make_backup(make_volume("vol-5", policy=Policy.objects.create(name="plain")), finished_hours_ago=90)
    make_backup(make_volume("vol-6", policy=replicated), BackupStatus.FAILED, finished_hours_ago=80)
    with django_assert_max_num_queries(9):  # the eight of every scrape, and one for replication
        parsed = scrape()
    assert value(parsed, "backup_replication_lag_seconds", target="dr") == 7 * 3600
    assert value(parsed, "backup_replication_lag_seconds", target="idle") == 0


def test_no_replication_target_no_lag_metric_and_no_query(settings):
    settings.REPLICATION_TARGETS = {}
    assert not [key for key in scrape() if key[0] == "backup_replication_lag_seconds"]


def test_fast_exposition_matches_prometheus_client():
    fast_policy = Policy.objects.create(name="fast", rpo_hours=1)
    volume = make_volume("quote-free", policy=fast_policy, used_bytes=123)
    make_backup(volume, stats={"bytes_read": 10, "duration_seconds": 12.5})
    make_backup(volume, BackupStatus.FAILED)
    make_job(JobKind.VERIFY, JobStatus.SUCCEEDED, finished_hours_ago=1, result={"repository_size_bytes": 10**12})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(clock=lambda: NOW))

    ours = samples(render(registry.collect()))
    reference = samples(generate_latest(registry).decode())

    ours.pop(("storage_platform_catalog_collect_seconds", frozenset()))
    reference.pop(("storage_platform_catalog_collect_seconds", frozenset()))
    assert ours == reference
    assert len(ours) > 50
