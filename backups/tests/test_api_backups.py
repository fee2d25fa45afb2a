"""The backups API: triggers (three endpoints), one-at-a-time per volume, idempotency,
validation, lists and filters, restore/verify/drill requests, delete.

Celery messages are recorded, not sent (`sent_messages`); running jobs is tested in
test_jobs.py and end to end in tests/test_end_to_end.py.
"""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus
from volumes.models import Volume, VolumeStatus

pytestmark = pytest.mark.django_db

BACKUP_FIELDS = {"id", "volume", "volume_name", "status", "job", "created_at", "completed_at", "stats",
                 "snapshot_id", "trigger", "error", "last_drill"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"} and body["code"] == code, body
    return body


def completed_backup(volume, snapshot_id="snap-1") -> Backup:
    job = Job.objects.create(kind=JobKind.BACKUP, volume=volume, status=JobStatus.SUCCEEDED, queue="backup",
                             finished_at=timezone.now())
    return Backup.objects.create(volume=volume, volume_name=volume.name, job=job, status=BackupStatus.COMPLETED,
                                 snapshot_id=snapshot_id, completed_at=timezone.now(), stats={"bytes_read": 9})


# --- triggers ------------------------------------------------------------------------------
def test_trigger_on_the_volume_answers_202_with_the_backup_and_its_job(api, volume, sent_messages,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api("backup").post(f"/api/v1/volumes/{volume.id}/backups")
    assert response.status_code == 202, response.content
    body = response.json()
    assert BACKUP_FIELDS <= set(body)
    assert body["volume"] == str(volume.id) and body["volume_name"] == "vol-a" and body["status"] == "queued"
    job = Job.objects.get(pk=body["job"])
    assert job.kind == JobKind.BACKUP and job.status == JobStatus.QUEUED and job.volume_id == volume.id
    assert job.created_by == "token:test-backup"
    assert sent_messages == [(str(job.pk), "backup", None)]
    assert Job.objects.get(pk=job.pk).sent_at is not None  # stamped once the message went out


@pytest.mark.parametrize("url", ["/api/v1/backups", "/api/v1/backup", "/api/v1/backups/", "/api/v1/backup/"])
@pytest.mark.parametrize("by", ["name", "id"])
def test_trigger_by_volume_name_or_id(api, volume, sent_messages, url, by):
    reference = volume.name if by == "name" else str(volume.id)
    response = api("backup").post(url, {"volume": reference}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["volume"] == str(volume.id)


def test_trigger_all_queues_every_available_volume_and_reports_skipped_ones(api, make_volume, sent_messages):
    first, second = make_volume("vol-one"), make_volume("vol-two")
    make_volume("vol-broken", status=VolumeStatus.ERROR)
    api("backup").post("/api/v1/backup", {"volume": "vol-one"}, format="json")
    response = api("backup").post("/api/v1/backups", {"all": True}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert [item["volume_name"] for item in body["results"]] == ["vol-two"] and body["count"] == 1
    assert [(item["volume_name"], item["code"]) for item in body["skipped"]] == [("vol-one", "backup_in_progress")]
    assert Backup.objects.filter(volume_id=second.id).count() == 1
    assert Backup.objects.filter(volume_id=first.id).count() == 1


def test_a_second_trigger_while_one_is_queued_is_409_naming_it(api, volume, sent_messages):
    first = api("backup").post(f"/api/v1/volumes/{volume.id}/backups").json()
    response = api("backup").post("/api/v1/backup", {"volume": volume.name}, format="json")
    body = assert_error(response, 409, "backup_in_progress")
    assert body["detail"]["backup"] == first["id"] and body["detail"]["job"] == first["job"]
    assert first["id"] in body["message"]
    assert Backup.objects.count() == 1


def test_a_backup_is_refused_while_a_restore_of_the_volume_runs(api, volume, sent_messages):
    backup = completed_backup(volume)
    restore = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {}, format="json")
    assert restore.status_code == 202, restore.content
    body = assert_error(api("backup").post(f"/api/v1/volumes/{volume.id}/backups"), 409, "backup_in_progress")
    assert body["detail"]["kind"] == "restore" and body["detail"]["job"] == restore.json()["id"]


def test_the_database_refuses_two_active_backups_of_one_volume_whatever_the_caller(volume):
    from django.db import IntegrityError, transaction

    Job.objects.create(kind=JobKind.BACKUP, volume=volume)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(kind=JobKind.RESTORE, volume=volume, status=JobStatus.RUNNING)
    # Finished jobs and repository-wide jobs do not count.
    Job.objects.create(kind=JobKind.BACKUP, volume=volume, status=JobStatus.FAILED)
    Job.objects.create(kind=JobKind.VERIFY, volume=volume)


def test_the_same_idempotency_key_returns_the_same_backup(api, volume, sent_messages):
    client = api("backup")
    first = client.post("/api/v1/backup", {"volume": volume.name}, format="json", HTTP_IDEMPOTENCY_KEY="req-42")
    again = client.post("/api/v1/backup", {"volume": volume.name}, format="json", HTTP_IDEMPOTENCY_KEY="req-42")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and first.json()["job"] == again.json()["job"]
    assert Backup.objects.count() == 1 and len(sent_messages) <= 1


def test_an_idempotency_key_reused_for_another_volume_is_409(api, volume, make_volume, sent_messages):
    other = make_volume("vol-b")
    api("backup").post("/api/v1/backup", {"volume": volume.name}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    response = api("backup").post("/api/v1/backup", {"volume": other.name}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert_error(response, 409, "idempotency_key_reused")


def test_an_overlong_idempotency_key_is_400(api, volume, sent_messages):
    response = api("backup").post("/api/v1/backup", {"volume": volume.name}, format="json",
                                  HTTP_IDEMPOTENCY_KEY="k" * 300)
    assert_error(response, 400, "invalid_idempotency_key")


# --- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["/api/v1/backup", "/api/v1/backups"])
def test_an_unknown_volume_is_404(api, url, db):
    response = api("backup").post(url, {"volume": "no-such-volume"}, format="json")
    assert_error(response, 404, "volume_not_found")


def test_an_unknown_volume_in_the_path_is_404(api, db):
    assert_error(api("backup").post(f"/api/v1/volumes/{uuid.uuid4()}/backups"), 404, "volume_not_found")
    assert_error(api("read").get("/api/v1/volumes/nothing-here/backups"), 404, "volume_not_found")


@pytest.mark.parametrize("url", ["/api/v1/backup", "/api/v1/backups", "/api/v1/verify"])
def test_malformed_json_is_400(api, url, db):
    response = api("backup").post(url, data='{"volume": ', content_type="application/json")
    assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize("body", [
    {"volume": 42},
    {"volume": None},
    {"volume": ["vol-a"]},
    {"volume": {"name": "vol-a"}},
    {"all": "yes"},
    {"all": True, "volume": "vol-a"},
    {},
    ["vol-a"],
])
def test_wrong_types_are_400_naming_the_problem(api, volume, body):
    response = api("backup").post("/api/v1/backups", body, format="json")
    assert_error(response, 400, "validation_error")
    assert Backup.objects.count() == 0


def test_a_volume_that_is_not_available_cannot_be_backed_up(api, make_volume):
    creating = make_volume("vol-new", status=VolumeStatus.CREATING)
    body = assert_error(api("backup").post(f"/api/v1/volumes/{creating.id}/backups"), 409, "volume_not_available")
    assert body["detail"]["status"] == "creating"


# --- lists ---------------------------------------------------------------------------------
def test_backups_are_listed_paginated_and_filtered_by_volume_and_status(api, make_volume, sent_messages):
    first, second = make_volume("vol-one"), make_volume("vol-two")
    completed_backup(first, "s-1")
    completed_backup(first, "s-2")
    api("backup").post(f"/api/v1/volumes/{second.id}/backups")
    listing = api("read").get("/api/v1/backups", {"page_size": 2}).json()
    assert listing["count"] == 3 and len(listing["results"]) == 2 and listing["next"]
    by_name = api("read").get("/api/v1/backups", {"volume": "vol-one"}).json()
    assert {item["snapshot_id"] for item in by_name["results"]} == {"s-1", "s-2"}
    by_id = api("read").get("/api/v1/backups", {"volume": str(second.id), "status": "queued"}).json()
    assert by_id["count"] == 1 and by_id["results"][0]["volume_name"] == "vol-two"
    on_volume = api("read").get(f"/api/v1/volumes/{first.id}/backups").json()
    assert on_volume["count"] == 2


def test_an_unknown_status_filter_is_400(api, db):
    assert_error(api("read").get("/api/v1/backups", {"status": "exploded"}), 400, "validation_error")


def test_backups_of_a_deleted_volume_stay_listed_by_its_name(api, volume):
    backup = completed_backup(volume)
    Volume.objects.filter(pk=volume.pk).delete()
    body = api("read").get(f"/api/v1/volumes/{volume.name}/backups").json()
    assert [item["id"] for item in body["results"]] == [str(backup.id)]
    assert api("read").get(f"/api/v1/backups/{backup.id}").json()["volume_name"] == "vol-a"


def test_an_unknown_backup_is_404(api, db):
    assert_error(api("read").get(f"/api/v1/backups/{uuid.uuid4()}"), 404, "backup_not_found")
    assert_error(api("read").get("/api/v1/backups/not-a-uuid"), 404, "backup_not_found")


# --- restore, verify, delete, browse -------------------------------------------------------
def test_restore_in_place_answers_202_with_the_job_and_marks_the_volume_restoring(api, volume, sent_messages):
    backup = completed_backup(volume)
    response = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {}, format="json")
    assert response.status_code == 202, response.content
    job = response.json()
    assert {"id", "kind", "status", "progress", "error", "created_at", "finished_at"} <= set(job)
    assert job["kind"] == "restore" and job["status"] == "queued" and job["volume"] == str(volume.id)
    assert job["progress"]["bytes_done"] == 0
    assert Volume.objects.get(pk=volume.pk).status == VolumeStatus.RESTORING
    second = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {}, format="json")
    assert_error(second, 409, "backup_in_progress")


def test_restore_into_a_new_volume_creates_it(api, volume, sent_messages, settings):
    backup = completed_backup(volume)
    response = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {"new_volume_name": "vol-copy"},
                                 format="json")
    assert response.status_code == 202, response.content
    created = Volume.objects.get(name="vol-copy")
    assert created.status == VolumeStatus.RESTORING and created.size_gb == volume.size_gb
    assert response.json()["volume"] == str(created.id)
    duplicate = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {"new_volume_name": "vol-copy"},
                                  format="json")
    assert duplicate.status_code == 409


def test_restore_requests_are_validated(api, volume, sent_messages):
    backup = completed_backup(volume)
    both = api("admin").post(f"/api/v1/backups/{backup.id}/restore",
                             {"new_volume_name": "x-1", "volume": volume.name}, format="json")
    assert_error(both, 400, "validation_error")
    wrong_type = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {"new_volume_name": ["x"]}, format="json")
    assert_error(wrong_type, 400, "validation_error")
    unknown = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {"volume": "nope"}, format="json")
    assert_error(unknown, 404, "volume_not_found")


def test_a_backup_that_did_not_complete_cannot_be_restored(api, volume, sent_messages):
    queued = api("backup").post(f"/api/v1/volumes/{volume.id}/backups").json()
    response = api("admin").post(f"/api/v1/backups/{queued['id']}/restore", {}, format="json")
    assert_error(response, 409, "backup_not_restorable")
    assert_error(api("read").get(f"/api/v1/backups/{queued['id']}/files"), 409, "backup_not_restorable")


def test_verify_answers_202_with_a_maintenance_job(api, volume, sent_messages, django_capture_on_commit_callbacks):
    backup = completed_backup(volume)
    with django_capture_on_commit_callbacks(execute=True):
        response = api("backup").post(f"/api/v1/backups/{backup.id}/verify", {"read_data_percent": 25}, format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kind == JobKind.VERIFY and job.queue == "maintenance" and job.params["read_data_percent"] == 25
    assert sent_messages[-1] == (str(job.pk), "maintenance", None)
    whole = api("backup").post("/api/v1/verify", {}, format="json")
    assert whole.status_code == 202 and whole.json()["kind"] == "verify"


@pytest.mark.parametrize("percent", [-1, 101, "lots"])
def test_verify_percent_out_of_range_is_400(api, db, percent):
    response = api("backup").post("/api/v1/verify", {"read_data_percent": percent}, format="json")
    assert_error(response, 400, "validation_error")


def test_deleting_an_active_backup_is_409_and_a_failed_one_is_removed(api, volume, sent_messages):
    queued = api("backup").post(f"/api/v1/volumes/{volume.id}/backups").json()
    assert_error(api("admin").delete(f"/api/v1/backups/{queued['id']}"), 409, "backup_active")
    Job.objects.filter(pk=queued["job"]).update(status=JobStatus.FAILED)
    Backup.objects.filter(pk=queued["id"]).update(status=BackupStatus.FAILED)
    assert api("admin").delete(f"/api/v1/backups/{queued['id']}").status_code == 204
    assert not Backup.objects.filter(pk=queued["id"]).exists()


def test_download_needs_a_path(api, volume):
    backup = completed_backup(volume)
    assert_error(api("read").get(f"/api/v1/backups/{backup.id}/download"), 400, "validation_error")
    assert_error(api("read").get(f"/api/v1/backups/{backup.id}/download", {"path": "a\x00b"}), 400, "invalid_path")


def test_a_new_volume_name_that_is_not_a_dns_label_is_400(api, volume, sent_messages):
    backup = completed_backup(volume)
    response = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {"new_volume_name": "Bad_Name"},
                                 format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"code", "message", "detail"}
    assert not Volume.objects.filter(name="Bad_Name").exists() and not Job.objects.filter(kind="restore").exists()


def test_restoring_a_deleted_volumes_backup_needs_a_new_volume_name(api, volume, sent_messages):
    backup = completed_backup(volume)
    Volume.objects.filter(pk=volume.pk).delete()
    assert_error(api("admin").post(f"/api/v1/backups/{backup.id}/restore", {}, format="json"), 400,
                 "invalid_restore_target")
    response = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {"new_volume_name": "vol-back"},
                                 format="json")
    assert response.status_code == 202 and Volume.objects.get(name="vol-back").size_gb == 1


def test_a_deleted_volumes_incremental_backup_restores_into_a_volume_sized_for_all_its_content(
        api, volume, sent_messages):
    """An incremental backup read little (its changed files) but holds everything: the new
    volume is sized from the snapshot's whole content, plus 10 %."""
    backup = completed_backup(volume)
    Backup.objects.filter(pk=backup.pk).update(stats={"bytes_read": 4096, "bytes_total": 5 * 1024**3})
    Volume.objects.filter(pk=volume.pk).delete()
    response = api("admin").post(f"/api/v1/backups/{backup.id}/restore", {"new_volume_name": "vol-whole"},
                                 format="json")
    assert response.status_code == 202, response.content
    assert Volume.objects.get(name="vol-whole").size_gb == 6


def test_a_retried_restore_with_the_same_idempotency_key_is_one_job(api, volume, sent_messages):
    backup = completed_backup(volume)
    url = f"/api/v1/backups/{backup.id}/restore"
    first = api("admin").post(url, {"new_volume_name": "vol-r"}, format="json", HTTP_IDEMPOTENCY_KEY="restore-1")
    again = api("admin").post(url, {"new_volume_name": "vol-r"}, format="json", HTTP_IDEMPOTENCY_KEY="restore-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and Job.objects.filter(kind="restore").count() == 1


# --- restore drills ------------------------------------------------------------------------
def test_a_drill_answers_202_with_a_maintenance_job_and_becomes_the_backups_last_drill(
        api, volume, sent_messages, django_capture_on_commit_callbacks):
    backup = completed_backup(volume)
    with django_capture_on_commit_callbacks(execute=True):
        response = api("backup").post(f"/api/v1/backups/{backup.id}/drill")
    assert response.status_code == 202, response.content
    body = response.json()
    assert {"id", "kind", "status", "progress", "error", "created_at", "finished_at"} <= set(body)
    assert (body["kind"], body["status"], body["queue"]) == ("drill", "queued", "maintenance")
    assert body["backup"] == str(backup.id) and body["volume"] == str(volume.id)
    assert body["params"]["snapshot_id"] == "snap-1" and body["created_by"] == "token:test-backup"
    assert sent_messages == [(body["id"], "maintenance", None)]
    shown = api("read").get(f"/api/v1/backups/{backup.id}").json()["last_drill"]
    assert shown == {"job": body["id"], "status": "queued", "error_code": "", "created_at": body["created_at"],
                     "finished_at": None}
    # A drill never touches the volume: no new volume, the volume stays available.
    assert Volume.objects.count() == 1 and Volume.objects.get(pk=volume.pk).status == VolumeStatus.AVAILABLE


def test_a_second_drill_of_a_backup_while_one_is_queued_is_409_naming_it(api, volume, sent_messages):
    backup = completed_backup(volume)
    first = api("backup").post(f"/api/v1/backups/{backup.id}/drill").json()
    body = assert_error(api("backup").post(f"/api/v1/backups/{backup.id}/drill"), 409, "drill_in_progress")
    assert body["detail"] == {"backup": str(backup.id), "job": first["id"], "status": "queued"}
    Job.objects.filter(pk=first["id"]).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    again = api("backup").post(f"/api/v1/backups/{backup.id}/drill")
    assert again.status_code == 202 and Backup.objects.get(pk=backup.id).last_drill_id == uuid.UUID(again.json()["id"])


def test_a_drill_neither_waits_for_nor_blocks_the_volume(api, volume, sent_messages):
    backup = completed_backup(volume)
    queued = api("backup").post(f"/api/v1/volumes/{volume.id}/backups").json()
    assert api("backup").post(f"/api/v1/backups/{backup.id}/drill").status_code == 202
    # The queued backup blocks deleting the volume; the queued drill (it reads only the repository) does not.
    assert_error(api("admin").delete(f"/api/v1/volumes/{volume.id}"), 409, "volume_busy")
    Job.objects.filter(pk=queued["job"]).update(status=JobStatus.CANCELLED)
    assert api("admin").delete(f"/api/v1/volumes/{volume.id}").status_code == 204


def test_a_drill_of_an_unknown_or_unfinished_backup_is_refused(api, volume, sent_messages):
    assert_error(api("backup").post(f"/api/v1/backups/{uuid.uuid4()}/drill"), 404, "backup_not_found")
    assert_error(api("backup").post("/api/v1/backups/not-a-uuid/drill"), 404, "backup_not_found")
    queued = api("backup").post(f"/api/v1/volumes/{volume.id}/backups").json()
    body = assert_error(api("backup").post(f"/api/v1/backups/{queued['id']}/drill"), 409, "backup_not_restorable")
    assert body["detail"] == {"backup": queued["id"], "status": "queued"}
    forgotten = completed_backup(volume, "snap-gone")
    Backup.objects.filter(pk=forgotten.pk).update(forgotten_at=timezone.now())
    assert_error(api("backup").post(f"/api/v1/backups/{forgotten.id}/drill"), 409, "backup_not_restorable")
    assert_error(api("backup").post(f"/api/v1/backups/{forgotten.id}/drill", data='{"x": ',
                                    content_type="application/json"), 400, "malformed_request")
    assert not Job.objects.filter(kind=JobKind.DRILL).exists()


def test_a_retried_drill_with_the_same_idempotency_key_is_one_job(api, volume, sent_messages):
    backup, other = completed_backup(volume), completed_backup(volume, "snap-2")
    first = api("backup").post(f"/api/v1/backups/{backup.id}/drill", HTTP_IDEMPOTENCY_KEY="drill-1")
    again = api("backup").post(f"/api/v1/backups/{backup.id}/drill", HTTP_IDEMPOTENCY_KEY="drill-1")
    assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
    assert_error(api("backup").post(f"/api/v1/backups/{other.id}/drill", HTTP_IDEMPOTENCY_KEY="drill-1"), 409,
                 "idempotency_key_reused")
    assert Job.objects.filter(kind=JobKind.DRILL).count() == 1


def test_the_backup_role_may_cancel_a_drill(api, volume, sent_messages):
    backup = completed_backup(volume)
    drill = api("backup").post(f"/api/v1/backups/{backup.id}/drill").json()
    assert api("read").post(f"/api/v1/jobs/{drill['id']}/cancel").status_code == 403
    cancelled = api("backup").post(f"/api/v1/jobs/{drill['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert api("read").get(f"/api/v1/backups/{backup.id}").json()["last_drill"]["status"] == "cancelled"
