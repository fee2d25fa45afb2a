"""Admin: the volume actions, backup restore action, job cancel action and the policy form."""

from __future__ import annotations

import pytest

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


def test_back_up_now_on_the_volume_list_queues_a_backup(operator, volume, sent_messages):
    response = operator.post("/admin/volumes/volume/", {"action": "back_up_now", "_selected_action": [str(volume.pk)]})
    assert response.status_code == 302
    backup = Backup.objects.get(volume_id=volume.pk)
    assert backup.trigger == "manual" and backup.job.created_by == "user:ops"


def test_restore_latest_to_a_new_volume_from_the_volume_list(operator, volume, sent_messages):
    completed_backup(volume)
    operator.post("/admin/volumes/volume/", {"action": "restore_latest_to_new_volume",
                                             "_selected_action": [str(volume.pk)]})
    job = Job.objects.get(kind=JobKind.RESTORE)
    copy = Volume.objects.get(pk=job.volume_id)
    assert copy.name.startswith("vol-a-restore-") and copy.status == "restoring"


def test_restore_action_on_backups_and_cancel_action_on_jobs(operator, volume, sent_messages):
    backup = completed_backup(volume)
    operator.post("/admin/backups/backup/", {"action": "restore_to_new_volume", "_selected_action": [str(backup.pk)]})
    job = Job.objects.get(kind=JobKind.RESTORE)
    operator.post("/admin/backups/job/", {"action": "cancel_jobs", "_selected_action": [str(job.pk)]})
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_the_admin_pages_render(operator, volume):
    backup = completed_backup(volume)
    for url in ("/admin/backups/backup/", f"/admin/backups/backup/{backup.pk}/change/", "/admin/backups/job/",
                f"/admin/backups/job/{backup.job_id}/change/", "/admin/backups/policy/", "/admin/backups/policy/add/"):
        assert operator.get(url).status_code == 200, url


def test_the_policy_form_refuses_a_bad_schedule_and_accepts_a_good_one(operator):
    fields = {"name": "nightly", "description": "", "enabled": "on", "schedule": "not a cron", "timezone": "UTC",
              "retention": '{"keep_last": 3}', "rpo_hours": 24, "verify_schedule": "0 3 * * 0",
              "verify_percent": 10, "prune_schedule": "0 20 * * *"}
    refused = operator.post("/admin/backups/policy/add/", fields)
    assert refused.status_code == 200 and "schedule" in refused.context["adminform"].form.errors
    assert not Policy.objects.filter(name="nightly").exists()
    accepted = operator.post("/admin/backups/policy/add/", {**fields, "schedule": "30 2 * * *"})
    assert accepted.status_code == 302
    assert Policy.objects.get(name="nightly").schedule == "30 2 * * *"


def test_restore_copy_names_stay_dns_labels():
    name = restore_copy_name("x" * 63)
    assert len(name) <= 63 and name.startswith("x") and "-restore-" in name
