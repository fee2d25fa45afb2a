"""Admin: volume actions, the restore form, verify/drill, cancel and prune with confirmation
pages, the job page's live progress panel, the policy form, and the audit event every
action writes with the staff user as actor."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from backups import services
from backups.admin import restore_copy_name
from backups.models import Backup, Job, JobKind, JobStatus, Policy
from backups.tests.test_api_backups import completed_backup
from volumes.models import Volume

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client.force_login(user)
    return client


def audit_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=f"admin:{action}").order_by("id"))


def test_back_up_now_queues_a_backup_links_its_job_and_is_audited(operator, volume, sent_messages):
    response = operator.post("/admin/volumes/volume/", {"action": "back_up_now", "_selected_action": [str(volume.pk)]},
                             follow=True)
    backup = Backup.objects.get(volume_id=volume.pk)
    assert backup.trigger == "manual" and backup.job.created_by == "user:ops"
    assert f'href="/admin/backups/job/{backup.job_id}/change/"' in response.content.decode()
    [event] = audit_events("back_up_now")
    assert (event.actor, event.actor_type, event.target_type, event.target_id, event.status_code, event.result) == (
        "ops", "user", "volumes", str(volume.pk), 202, "success")


def test_a_refused_back_up_now_is_audited_as_a_failure(operator, volume, sent_messages):
    for _ in range(2):
        operator.post("/admin/volumes/volume/", {"action": "back_up_now", "_selected_action": [str(volume.pk)]})
    assert [event.status_code for event in audit_events("back_up_now")] == [202, 409]
    assert audit_events("back_up_now")[1].result == "failure"


def test_restore_latest_leads_to_the_restore_form_of_the_newest_backup(operator, volume, sent_messages):
    completed_backup(volume, snapshot_id="older")
    newest = completed_backup(volume, snapshot_id="newest")
    response = operator.post("/admin/volumes/volume/", {"action": "restore_latest_to_new_volume",
                                                        "_selected_action": [str(volume.pk)]})
    assert response.status_code == 302 and response["Location"] == f"/admin/backups/backup/{newest.pk}/restore/"
    assert not Job.objects.filter(kind=JobKind.RESTORE).exists()  # nothing happens before the form


def test_the_restore_form_asks_for_a_name_and_paths_and_queues_the_restore(operator, volume, sent_messages):
    backup = completed_backup(volume)
    form = operator.get(f"/admin/backups/backup/{backup.pk}/restore/")
    assert form.status_code == 200
    assert form.context["form"].initial["new_volume_name"].startswith("vol-a-restore-")
    response = operator.post(f"/admin/backups/backup/{backup.pk}/restore/",
                             {"new_volume_name": "vol-a-copy", "paths": "/dir\n a.txt \n", "size_gb": ""})
    job = Job.objects.get(kind=JobKind.RESTORE)
    assert response.status_code == 302 and response["Location"] == f"/admin/backups/job/{job.pk}/change/"
    assert job.params["paths"] == ["/dir", "/a.txt"] and job.params["new_volume"] is True
    assert Volume.objects.get(pk=job.volume_id).name == "vol-a-copy"
    [event] = audit_events("restore")
    assert (event.actor, event.target_type, event.target_id, event.status_code) == ("ops", "backups", str(backup.pk), 202)


def test_the_restore_form_shows_a_taken_name_or_a_bad_path_without_queueing(operator, volume, make_volume, sent_messages):
    backup = completed_backup(volume)
    make_volume("taken")
    taken = operator.post(f"/admin/backups/backup/{backup.pk}/restore/", {"new_volume_name": "taken"})
    assert taken.status_code == 200 and "taken" in " ".join(taken.context["form"].non_field_errors())
    escaping = operator.post(f"/admin/backups/backup/{backup.pk}/restore/",
                             {"new_volume_name": "vol-a-copy", "paths": "../etc/passwd"})
    assert escaping.status_code == 200 and escaping.context["form"].non_field_errors()
    assert not Job.objects.filter(kind=JobKind.RESTORE).exists()
    assert [event.status_code for event in audit_events("restore")] == [409, 400]


def test_verify_and_drill_actions_start_jobs_and_are_audited(operator, volume, sent_messages):
    backup = completed_backup(volume)
    operator.post("/admin/backups/backup/", {"action": "verify_repository", "_selected_action": [str(backup.pk)]})
    verify = Job.objects.get(kind=JobKind.VERIFY)
    assert verify.params["backup"] == str(backup.pk) and verify.params["read_data_percent"] == 10
    operator.post("/admin/backups/backup/", {"action": "drill", "_selected_action": [str(backup.pk)]})
    drill = Job.objects.get(kind=JobKind.DRILL)
    assert drill.params["backup"] == str(backup.pk) and drill.queue == "maintenance"
    assert Backup.objects.get(pk=backup.pk).last_drill_id == drill.pk
    assert Volume.objects.count() == 1  # a drill restores into a scratch folder, not a new volume
    # Drilling it again while that drill is queued is refused, and audited as such.
    operator.post("/admin/backups/backup/", {"action": "drill", "_selected_action": [str(backup.pk)]})
    assert Job.objects.filter(kind=JobKind.DRILL).count() == 1
    assert [(event.action, event.status_code) for event in AuditEvent.objects.order_by("id")] == [
        ("admin:verify", 202), ("admin:drill", 202), ("admin:drill", 409)]
    listing = operator.get("/admin/backups/backup/").content.decode()
    assert "Last drill" in listing and f"/admin/backups/job/{drill.pk}/change/" in listing


def test_cancel_asks_for_confirmation_first(operator, volume, sent_messages):
    backup = services.trigger_backup(volume, trigger="manual")
    selection = {"action": "cancel_jobs", "_selected_action": [str(backup.job_id)]}
    page = operator.post("/admin/backups/job/", selection)
    assert page.status_code == 200 and "Yes, cancel them" in page.content.decode()
    assert Job.objects.get(pk=backup.job_id).status == JobStatus.QUEUED and not audit_events("cancel_job")
    operator.post("/admin/backups/job/", {**selection, "post": "yes"})
    assert Job.objects.get(pk=backup.job_id).status == JobStatus.CANCELLED
    [event] = audit_events("cancel_job")
    assert event.target_type == "jobs" and event.target_id == str(backup.job_id)


def test_prune_now_is_confirmed_first_and_a_dry_run_leads_to_its_job(operator, volume, sent_messages):
    policy = Policy.objects.get(is_default=True)
    selection = {"action": "prune_now", "_selected_action": [str(policy.pk)]}
    page = operator.post("/admin/backups/policy/", selection)
    assert page.status_code == 200 and "cannot be undone" in page.content.decode()
    assert not Job.objects.filter(kind=JobKind.PRUNE).exists()
    operator.post("/admin/backups/policy/", {**selection, "post": "yes"})
    assert Job.objects.get(kind=JobKind.PRUNE).params == {"dry_run": False}
    dry = operator.post("/admin/backups/policy/", {"action": "prune_dry_run", "_selected_action": [str(policy.pk)]},
                        follow=True)
    dry_job = Job.objects.get(kind=JobKind.PRUNE, params__dry_run=True)
    assert f"/admin/backups/job/{dry_job.pk}/change/" in dry.content.decode()
    assert [event.action for event in AuditEvent.objects.order_by("id")] == ["admin:prune_now", "admin:prune_dry_run"]


def test_a_finished_dry_run_shows_what_would_be_removed_on_its_page(operator, volume):
    job = Job.objects.create(kind=JobKind.PRUNE, status=JobStatus.SUCCEEDED, queue="maintenance",
                             finished_at=timezone.now(), params={"dry_run": True},
                             result={"dry_run": True, "forgotten": {"vol-a": ["0123456789abcdef"]},
                                     "prune": {"packs_removed": 3, "bytes_freed": 4096}})
    page = operator.get(f"/admin/backups/job/{job.pk}/change/").content.decode()
    assert "would forget" in page and "vol-a: 1 snapshot" in page and "01234567" in page
    assert "packs_removed: 3" in page and 'data-finished="true"' in page


def test_a_dry_run_page_names_the_snapshots_kept_as_last_good(operator, volume):
    job = Job.objects.create(kind=JobKind.PRUNE, status=JobStatus.SUCCEEDED, queue="maintenance",
                             finished_at=timezone.now(), params={"dry_run": True},
                             result={"dry_run": True, "forgotten": {"vol-a": [], "vol-b": []}, "keep_good": 3,
                                     "kept_good": {"vol-a": [{"snapshot_id": "fedcba9876543210", "how": "verified",
                                                              "only_reason": True}],
                                                   "vol-b": []},
                                     "prune": {}})
    page = operator.get(f"/admin/backups/job/{job.pk}/change/").content.decode()
    assert "kept as last good (newest 3)" in page
    assert "<code>fedcba98</code> (verified, kept only for this)" in page and "vol-b: none known good" in page


def test_a_running_jobs_page_polls_its_progress_fragment(operator, volume):
    job = Job.objects.create(kind=JobKind.BACKUP, volume=volume, status=JobStatus.RUNNING, queue="backup",
                             started_at=timezone.now(), heartbeat_at=timezone.now(), worker="w1",
                             progress_done=512 * 1024, progress_total=1024 * 1024, progress_message="backing up")
    page = operator.get(f"/admin/backups/job/{job.pk}/change/").content.decode()
    assert f'data-poll-url="/admin/backups/job/{job.pk}/progress/"' in page and "console/poll.js" in page
    fragment = operator.get(f"/admin/backups/job/{job.pk}/progress/").content.decode()
    assert 'data-finished="false"' in fragment and "50 %" in fragment and "backing up" in fragment
    running = operator.get("/admin/backups/job/running/").content.decode()
    assert "vol-a" in running and "50 %" in running


def test_the_fragments_need_a_staff_login(client, volume):
    job = Job.objects.create(kind=JobKind.BACKUP, volume=volume, queue="backup")
    response = client.get(f"/admin/backups/job/{job.pk}/progress/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_admin_pages_render(operator, volume):
    backup = completed_backup(volume)
    for url in ("/admin/backups/backup/", f"/admin/backups/backup/{backup.pk}/change/", "/admin/backups/job/",
                f"/admin/backups/job/{backup.job_id}/change/", "/admin/backups/policy/", "/admin/backups/policy/add/",
                f"/admin/backups/policy/{Policy.objects.get(is_default=True).pk}/change/"):
        assert operator.get(url).status_code == 200, url


def test_lists_link_volumes_and_jobs_search_by_volume(operator, volume, make_volume):
    backup = completed_backup(volume)
    other = make_volume("other")
    completed_backup(other, snapshot_id="snap-other")
    backups_page = operator.get("/admin/backups/backup/").content.decode()
    assert f'href="/admin/volumes/volume/{volume.pk}/change/"' in backups_page
    found = operator.get("/admin/backups/job/", {"q": "vol-a"})
    assert [job.pk for job in found.context["cl"].result_list] == [backup.job_id]
    assert f'href="/admin/volumes/volume/{volume.pk}/change/"' in found.content.decode()


def test_policies_show_their_next_and_last_run(operator):
    from django_celery_beat.models import PeriodicTask

    policy = Policy.objects.get(is_default=True)
    PeriodicTask.objects.filter(name=f"policy:{policy.pk}:backup").update(
        last_run_at=timezone.now().replace(year=2020, month=5, day=4, hour=18, minute=0))
    page = operator.get("/admin/backups/policy/").content.decode()
    assert "2020-05-04 18:00" in page
    from backups.scheduling import cron

    following = cron.next_run(cron.parse(policy.schedule, policy.timezone), timezone.now())
    assert f"{timezone.localtime(following):%Y-%m-%d %H:%M}" in page


def test_the_policy_form_refuses_a_bad_schedule_and_accepts_a_good_one(operator):
    fields = {"name": "nightly", "description": "", "enabled": "on", "schedule": "not a cron", "timezone": "UTC",
              "retention": '{"keep_last": 3}', "rpo_hours": 24, "verify_schedule": "0 3 * * 0",
              "verify_percent": 10, "prune_schedule": "0 20 * * *", "keep_good": 2}
    refused = operator.post("/admin/backups/policy/add/", fields)
    assert refused.status_code == 200 and "schedule" in refused.context["adminform"].form.errors
    assert not Policy.objects.filter(name="nightly").exists()
    accepted = operator.post("/admin/backups/policy/add/", {**fields, "schedule": "30 2 * * *"})
    assert accepted.status_code == 302
    policy = Policy.objects.get(name="nightly")
    assert (policy.schedule, policy.keep_good) == ("30 2 * * *", 2)
    [event] = audit_events("create_policy")
    assert (event.actor, event.target_type, event.target_id, event.status_code) == ("ops", "policies", str(policy.pk), 201)


def test_restore_copy_names_stay_dns_labels():
    name = restore_copy_name("x" * 63)
    assert len(name) <= 63 and name.startswith("x") and "-restore-" in name


def test_the_policy_form_takes_the_rpo_in_minutes_or_in_whole_hours(operator):
    fields = {"name": "databases", "description": "", "enabled": "on", "schedule": "*/15 * * * *",
              "timezone": "UTC", "retention": '{"keep_last": 3}', "rpo_minutes": 15, "rpo_hours": "",
              "verify_schedule": "", "verify_percent": 10, "prune_schedule": "", "keep_good": 2}
    assert operator.post("/admin/backups/policy/add/", fields).status_code == 302
    policy = Policy.objects.get(name="databases")
    assert (policy.schedule, policy.rpo_minutes) == ("*/15 * * * *", 15)
    page = operator.get(f"/admin/backups/policy/{policy.pk}/change/").content.decode()
    assert "RPO (minutes)" in page and "RPO (hours)" in page
    changed = {**fields, "rpo_hours": 2}  # the minutes shown left as they were: the hours win
    assert operator.post(f"/admin/backups/policy/{policy.pk}/change/", changed).status_code == 302
    assert Policy.objects.get(pk=policy.pk).rpo_minutes == 120
    both = operator.post(f"/admin/backups/policy/{policy.pk}/change/", {**fields, "rpo_minutes": 30, "rpo_hours": 3})
    assert both.status_code == 200 and "rpo_minutes" in both.context["adminform"].form.errors
    assert Policy.objects.get(pk=policy.pk).rpo_minutes == 120


def test_the_policy_form_offers_the_configured_replication_targets_and_replicates_on_request(operator, settings,
                                                                                            tmp_path, sent_messages):
    settings.REPLICATION_TARGETS = {"dr": {"kind": "local", "location": str(tmp_path / "replica"), "key": None}}
    fields = {"name": "replicated", "description": "", "enabled": "on", "schedule": "0 18 * * *", "timezone": "UTC",
              "retention": '{"keep_last": 3}', "rpo_minutes": 1440, "rpo_hours": "", "verify_schedule": "",
              "verify_percent": 10, "prune_schedule": "", "keep_good": 2, "replication_target": "nowhere",
              "replication_schedule": "30 * * * *"}
    page = operator.get("/admin/backups/policy/add/").content.decode()
    assert f"dr ({tmp_path / 'replica'})" in page
    refused = operator.post("/admin/backups/policy/add/", fields)
    assert refused.status_code == 200 and "replication_target" in refused.context["adminform"].form.errors
    assert operator.post("/admin/backups/policy/add/", {**fields, "replication_target": "dr"}).status_code == 302
    policy = Policy.objects.get(name="replicated")
    assert (policy.replication_target, policy.replication_schedule) == ("dr", "30 * * * *")

    operator.post("/admin/backups/policy/", {"action": "replicate_now", "_selected_action": [str(policy.pk)]})
    job = Job.objects.get(kind=JobKind.REPLICATE)
    assert job.policy_id == policy.pk and job.created_by == "user:ops"
    [event] = audit_events("replicate_policy")
    assert (event.target_type, event.target_id, event.status_code) == ("policies", str(policy.pk), 202)
