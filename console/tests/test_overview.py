"""The overview on the admin index and the volume list's protection columns, read from real
catalog rows through the Django test client. Ages are relative to the real clock (the admin
reads it too)."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus
from monitoring import heartbeat

pytestmark = pytest.mark.django_db

def ago(**delta) -> datetime.datetime:
    # The real clock at the moment of the call, as the admin reads it a moment later: a
    # time read once at import is minutes old by the time a long test run gets here.
    return timezone.now() - datetime.timedelta(**delta)


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password-1"))
    return client


def backed_up(volume, at: datetime.datetime, *, status=BackupStatus.COMPLETED, stats=None) -> Backup:
    job = Job.objects.create(kind=JobKind.BACKUP, volume=volume, queue="backup", finished_at=at,
                             status=JobStatus.SUCCEEDED if status == BackupStatus.COMPLETED else JobStatus.FAILED)
    backup = Backup.objects.create(volume=volume, volume_name=volume.name, job=job, status=status,
                                   snapshot_id=f"snap-{job.pk}", stats=stats or {"bytes_total": 0},
                                   completed_at=at if status == BackupStatus.COMPLETED else None)
    Backup.objects.filter(pk=backup.pk).update(created_at=at)
    return backup


@pytest.fixture
def fleet(make_volume):
    """fresh: backed up 1 h ago (RPO 24 h); stale: 30 h ago; tight: 3 h ago with an RPO of 2 h;
    empty: never backed up."""
    fresh, stale = make_volume("fresh"), make_volume("stale")
    tight, empty = make_volume("tight", rpo_hours_override=2), make_volume("empty")
    backed_up(fresh, ago(hours=1), stats={"bytes_total": 3000, "bytes_stored": 1000})
    backed_up(stale, ago(hours=30), stats={"bytes_total": 3000, "bytes_stored": 500})
    backed_up(stale, ago(hours=2), status=BackupStatus.FAILED)
    backed_up(tight, ago(hours=3))
    return {"fresh": fresh, "stale": stale, "tight": tight, "empty": empty}


def test_the_overview_counts_and_names_late_volumes_with_the_age_of_their_last_good_backup(operator, fleet):
    page = operator.get("/admin/")
    overview = page.context["overview"]
    assert overview.counts == {"ok": 1, "late": 2, "never": 1}
    assert [(volume.name, round(volume.age.total_seconds() / 3600)) for volume in overview.late] == [
        ("stale", 30), ("tight", 3)]
    assert [volume.name for volume in overview.never] == ["empty"]
    html = page.content.decode()
    assert 'id="late-volumes"' in html and ">stale</a>" in html and "1\xa0day, 6\xa0hours ago" in html


def test_running_jobs_failures_repository_and_dedup_ratio(operator, fleet):
    Job.objects.create(kind=JobKind.BACKUP, volume=fleet["fresh"], status=JobStatus.RUNNING, queue="backup",
                       started_at=ago(minutes=2), progress_done=30, progress_total=120)
    Job.objects.create(kind=JobKind.VERIFY, status=JobStatus.FAILED, queue="maintenance", finished_at=ago(days=3),
                       error_code="old_failure")
    Job.objects.create(kind=JobKind.PRUNE, status=JobStatus.SUCCEEDED, queue="maintenance", finished_at=ago(hours=5),
                       params={"dry_run": False}, result={"repository_size_bytes": 2000})
    overview = operator.get("/admin/").context["overview"]
    [running] = overview.running
    assert running.job.volume.name == "fresh" and running.progress["percent"] == 25.0
    # The failed backup of `stale` (2 h ago) is listed; the verify that failed 3 days ago is not.
    assert [(job.kind, job.volume.name) for job in overview.failed] == [("backup", "stale")]
    assert overview.repository.size_bytes == 2000 and overview.repository.logical_bytes == 6000
    assert overview.repository.dedup_ratio == 3.0


def test_maintenance_is_due_when_a_scheduled_run_passed_since_the_last_success(operator):
    from backups.models import Policy

    Policy.objects.filter(is_default=True).update(verify_schedule="0 3 * * *", prune_schedule="0 20 * * *")
    before = {item.kind: item for item in operator.get("/admin/").context["overview"].maintenance}
    assert before["verify"].due and before["prune"].due and before["verify"].last is None
    now = timezone.now()
    Job.objects.create(kind=JobKind.VERIFY, status=JobStatus.SUCCEEDED, queue="maintenance", finished_at=now)
    Job.objects.create(kind=JobKind.PRUNE, status=JobStatus.SUCCEEDED, queue="maintenance", finished_at=now,
                       params={"dry_run": True})
    after = {item.kind: item for item in operator.get("/admin/").context["overview"].maintenance}
    assert not after["verify"].due and after["verify"].next_tick > now
    assert after["prune"].due  # a dry run removes nothing: the prune is still due


def test_worker_and_beat_heartbeats(operator):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    heartbeat.beat("celery@alive", "backup", now=ago(seconds=5))
    heartbeat.beat("celery@silent", "backup", now=ago(minutes=30))
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(name="platform:reconcile-jobs", defaults={
        "task": "backups.scheduling.tasks.reconcile_jobs", "interval": every_minute, "last_run_at": ago(minutes=1)})
    overview = operator.get("/admin/").context["overview"]
    # Only these two: real workers of other tests may have left heartbeats of their own.
    seen = {(worker.name, worker.alive) for worker in overview.workers
            if worker.name in ("celery@alive", "celery@silent")}
    assert seen == {("celery@alive", True), ("celery@silent", False)}
    assert overview.beat.alive
    PeriodicTask.objects.filter(name="platform:reconcile-jobs").update(last_run_at=ago(minutes=20))
    assert not operator.get("/admin/").context["overview"].beat.alive


def test_the_volume_list_shows_and_filters_by_rpo_status(operator, fleet):
    listing = operator.get("/admin/volumes/volume/")
    html = listing.content.decode()
    assert '<span class="rpo rpo-late"' in html and '<span class="rpo rpo-never"' in html
    assert "2\xa0hours ago, failed" in html  # the newest attempt of `stale`
    for status, names in (("late", ["stale", "tight"]), ("ok", ["fresh"]), ("never", ["empty"])):
        filtered = operator.get("/admin/volumes/volume/", {"rpo": status})
        assert [volume.name for volume in filtered.context["cl"].result_list] == names, status


def test_a_volume_page_lists_its_recent_backups_and_jobs(operator, fleet):
    stale = fleet["stale"]
    html = operator.get(f"/admin/volumes/volume/{stale.pk}/change/").content.decode()
    assert 'id="recent-backups"' in html and 'id="recent-jobs"' in html
    for backup in Backup.objects.filter(volume_id=stale.pk):
        assert f"/admin/backups/backup/{backup.pk}/change/" in html
        assert f"/admin/backups/job/{backup.job_id}/change/" in html


def test_the_overview_takes_a_fixed_number_of_queries(operator, make_volume, django_assert_max_num_queries):
    for number in range(30):
        backed_up(make_volume(f"v{number}"), ago(hours=number))
    with django_assert_max_num_queries(25):
        operator.get("/admin/")
