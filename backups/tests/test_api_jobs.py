"""The jobs API: list with filters, retrieve with progress, cancel with per-kind roles."""

from __future__ import annotations

import uuid

import pytest

from backups import jobs
from backups.models import Job, JobKind, JobStatus
from backups.tests.test_api_backups import assert_error, completed_backup

pytestmark = pytest.mark.django_db

JOB_FIELDS = {"id", "kind", "status", "progress", "error", "created_at", "finished_at", "attempts", "worker",
              "heartbeat_at", "volume", "result"}


def test_a_job_shows_its_progress_attempts_and_worker(api, volume, sent_messages):
    backup = api("backup").post(f"/api/v1/volumes/{volume.id}/backups").json()
    jobs.claim(backup["job"], worker="node-1:42")
    Job.objects.filter(pk=backup["job"]).update(progress_done=25, progress_total=100)
    body = api("read").get(f"/api/v1/jobs/{backup['job']}").json()
    assert JOB_FIELDS <= set(body)
    assert body["status"] == "running" and body["worker"] == "node-1:42" and body["attempts"] == 1
    assert body["progress"] == {"bytes_done": 25, "bytes_total": 100, "percent": 25.0, "message": ""}
    assert body["backup"] == backup["id"] and body["volume"] == str(volume.id)


def test_jobs_are_filtered_by_kind_status_and_volume(api, volume, make_volume, sent_messages):
    other = make_volume("vol-other")
    api("backup").post(f"/api/v1/volumes/{volume.id}/backups")
    api("backup").post(f"/api/v1/volumes/{other.id}/backups")
    api("backup").post("/api/v1/verify", {}, format="json")
    client = api("read")
    assert client.get("/api/v1/jobs").json()["count"] == 3
    assert client.get("/api/v1/jobs", {"kind": "verify"}).json()["count"] == 1
    assert client.get("/api/v1/jobs", {"volume": "vol-other"}).json()["count"] == 1
    assert client.get("/api/v1/jobs", {"volume": str(volume.id), "status": "queued"}).json()["count"] == 1
    assert_error(client.get("/api/v1/jobs", {"kind": "teleport"}), 400, "validation_error")
    assert_error(client.get("/api/v1/jobs", {"status": "sleeping"}), 400, "validation_error")


def test_an_unknown_job_is_404(api, db):
    assert_error(api("read").get(f"/api/v1/jobs/{uuid.uuid4()}"), 404, "job_not_found")
    assert_error(api("backup").post("/api/v1/jobs/nope/cancel"), 404, "job_not_found")


def test_cancelling_a_queued_backup_job_answers_202_cancelled(api, volume, sent_messages):
    backup = api("backup").post(f"/api/v1/volumes/{volume.id}/backups").json()
    response = api("backup").post(f"/api/v1/jobs/{backup['job']}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert api("read").get(f"/api/v1/backups/{backup['id']}").json()["status"] == "cancelled"
    # The volume is free again.
    assert api("backup").post(f"/api/v1/volumes/{volume.id}/backups").status_code == 202


def test_cancelling_a_running_job_requests_it(api, volume, sent_messages):
    backup = api("backup").post(f"/api/v1/volumes/{volume.id}/backups").json()
    jobs.claim(backup["job"], worker="w:1")
    body = api("backup").post(f"/api/v1/jobs/{backup['job']}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested"] is True


def test_cancelling_a_finished_job_is_409(api, volume):
    job = Job.objects.create(kind=JobKind.BACKUP, volume=volume, status=JobStatus.SUCCEEDED)
    assert_error(api("backup").post(f"/api/v1/jobs/{job.id}/cancel"), 409, "job_finished")


def test_cancelling_a_restore_needs_admin(api, volume, sent_messages):
    backup = completed_backup(volume)
    restore = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {}, format="json").json()
    assert_error(api("backup").post(f"/api/v1/jobs/{restore['id']}/cancel"), 403, "permission_denied")
    assert api("admin").post(f"/api/v1/jobs/{restore['id']}/cancel").json()["status"] == "cancelled"
    volume.refresh_from_db()
    assert volume.status == "available"  # a cancelled restore gives the volume back
