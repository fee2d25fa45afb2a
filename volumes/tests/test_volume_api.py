"""The volume resource: create, read, list with filters and pages, update, delete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus, Policy
from volumes.models import Volume
from volumes.tests.conftest import assert_error

pytestmark = pytest.mark.django_db

CONTRACT_FIELDS = {"id", "name", "size_gb", "status", "path", "used_bytes", "labels", "rpo_hours", "policy",
                   "created_at"}


def test_create_makes_an_available_volume_with_its_folder(admin, volume_root):
    response = admin.post("/api/v1/volumes", {"name": "db-1", "size_gb": 5, "labels": {"tier": "gold"}},
                          format="json")
    assert response.status_code == 201
    body = response.json()
    assert CONTRACT_FIELDS <= set(body)
    assert body["status"] == "available" and body["used_bytes"] == 0 and body["size_gb"] == 5
    assert body["labels"] == {"tier": "gold"}
    assert body["policy"] == "default" and body["rpo_hours"] == 24
    assert Path(body["path"]) == Path(volume_root) / body["id"]
    assert Path(body["path"]).is_dir()
    assert response["Location"] == f"/api/v1/volumes/{body['id']}"


def test_retrieve_by_id_or_name_and_unknown_is_404(admin, create_volume):
    volume = create_volume("web-data")
    by_id = admin.get(f"/api/v1/volumes/{volume['id']}")
    by_name = admin.get("/api/v1/volumes/web-data/")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json()
    assert_error(admin.get("/api/v1/volumes/nope"), 404, "volume_not_found")
    assert_error(admin.get("/api/v1/volumes/8c7f1c55-0000-4000-8000-000000000000"), 404, "volume_not_found")


def test_policy_by_name_or_id_and_rpo_override(admin, create_volume):
    hourly = Policy.objects.create(name="hourly", schedule="0 * * * *", rpo_hours=2)
    by_name = create_volume("a-vol", policy="hourly")
    by_id = create_volume("b-vol", policy=hourly.pk, rpo_hours=6)
    no_policy = create_volume("c-vol", policy=None)
    assert (by_name["policy"], by_name["rpo_hours"]) == ("hourly", 2)
    assert (by_id["policy"], by_id["rpo_hours"]) == ("hourly", 6)
    assert (no_policy["policy"], no_policy["rpo_hours"]) == (None, 24)
    cleared = admin.patch("/api/v1/volumes/b-vol", {"rpo_hours": None}, format="json").json()
    assert cleared["rpo_hours"] == 2


def test_update_size_labels_and_read_modify_write(admin, create_volume):
    volume = create_volume("grow", size_gb=1)
    response = admin.patch("/api/v1/volumes/grow", {"size_gb": 3, "labels": {"app": "shop"}}, format="json")
    assert response.status_code == 200
    assert response.json()["size_gb"] == 3 and response.json()["labels"] == {"app": "shop"}
    # Sending back what GET returned is accepted (read-only fields ignored, nothing changes).
    current = admin.get("/api/v1/volumes/grow").json()
    assert admin.put("/api/v1/volumes/grow", current, format="json").status_code == 200
    assert Volume.objects.get(pk=volume["id"]).size_gb == 3


def test_name_cannot_change(admin, create_volume):
    create_volume("fixed")
    body = assert_error(admin.patch("/api/v1/volumes/fixed", {"name": "other"}, format="json"), 400,
                        "validation_error")
    assert "name" in body["detail"]


def test_shrinking_below_used_bytes_is_409(admin, create_volume):
    create_volume("full", size_gb=2)
    Volume.objects.filter(name="full").update(used_bytes=1024**3 + 1)
    assert_error(admin.patch("/api/v1/volumes/full", {"size_gb": 1}, format="json"), 409, "quota_below_usage")
    assert Volume.objects.get(name="full").size_gb == 2


def test_delete_removes_folder_and_row_but_keeps_backups(admin, create_volume):
    volume = create_volume("doomed")
    Path(volume["path"], "keep.txt").write_bytes(b"data")
    job = Job.objects.create(kind=JobKind.BACKUP, status=JobStatus.SUCCEEDED, volume_id=volume["id"])
    backup = Backup.objects.create(volume_id=volume["id"], volume_name="doomed", status=BackupStatus.COMPLETED,
                                   job=job, snapshot_id="abc")
    response = admin.delete("/api/v1/volumes/doomed")
    assert response.status_code == 204
    assert not os.path.exists(volume["path"])
    assert not Volume.objects.filter(pk=volume["id"]).exists()
    backup.refresh_from_db()
    assert str(backup.volume_id) == volume["id"] and backup.volume_name == "doomed"
    assert Job.objects.filter(pk=job.pk).exists()
    assert_error(admin.get("/api/v1/volumes/doomed"), 404, "volume_not_found")
    # The name is free again; the new volume gets a new id and folder.
    again = admin.post("/api/v1/volumes", {"name": "doomed", "size_gb": 1}, format="json").json()
    assert again["id"] != volume["id"]


def test_delete_with_active_job_is_409(admin, create_volume):
    volume = create_volume("busy")
    job = Job.objects.create(kind=JobKind.BACKUP, status=JobStatus.RUNNING, volume_id=volume["id"])
    body = assert_error(admin.delete("/api/v1/volumes/busy"), 409, "volume_busy")
    assert body["detail"]["job"] == str(job.pk)
    assert os.path.isdir(volume["path"])
    assert Volume.objects.get(pk=volume["id"]).status == "available"  # the deleting mark was undone
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    Volume.objects.filter(pk=volume["id"]).update(status="restoring")
    assert_error(admin.delete("/api/v1/volumes/busy"), 409, "volume_busy")
    assert Volume.objects.get(pk=volume["id"]).status == "restoring"
    Volume.objects.filter(pk=volume["id"]).update(status="error")
    assert admin.delete("/api/v1/volumes/busy").status_code == 204  # a volume in error can go


def test_list_filters_by_name_status_and_labels(admin, create_volume):
    create_volume("alpha", labels={"tier": "gold", "app": "shop"})
    create_volume("beta", labels={"tier": "gold", "app": "blog"})
    create_volume("gamma", labels={"tier": "bronze"})
    Volume.objects.filter(name="gamma").update(status="error")

    def names(params):
        response = admin.get("/api/v1/volumes", params)
        assert response.status_code == 200, response.content
        return [volume["name"] for volume in response.json()["results"]]

    assert names({}) == ["alpha", "beta", "gamma"]
    assert names({"name": "beta"}) == ["beta"]
    assert names({"status": "error"}) == ["gamma"]
    assert names({"label": "tier=gold"}) == ["alpha", "beta"]
    assert names({"label": ["tier=gold", "app=blog"]}) == ["beta"]
    assert names({"label_selector": "tier=gold,app=shop"}) == ["alpha"]
    assert names({"label": "tier=silver"}) == []
    # The same term twice is one condition; one key with two values matches nothing.
    assert names({"label": ["tier=gold", "tier=gold"]}) == ["alpha", "beta"]
    assert names({"label": ["tier=gold", "tier=bronze"]}) == []
    assert names({"label": "tier="}) == []
    assert_error(admin.get("/api/v1/volumes", {"status": "sleeping"}), 400, "validation_error")
    assert_error(admin.get("/api/v1/volumes", {"label": "no-equals-sign"}), 400, "validation_error")


def test_pagination_up_to_500(admin, make_volume):
    Volume.objects.bulk_create([Volume(name=f"v-{index:04d}", size_gb=1, status="available")
                                for index in range(520)])
    first = admin.get("/api/v1/volumes", {"page_size": 500}).json()
    assert first["count"] == 520 and len(first["results"]) == 500 and first["next"] and first["previous"] is None
    capped = admin.get("/api/v1/volumes", {"page_size": 5000}).json()
    assert len(capped["results"]) == 500
    second = admin.get("/api/v1/volumes", {"page_size": 500, "page": 2}).json()
    assert [volume["name"] for volume in second["results"]] == [f"v-{index:04d}" for index in range(500, 520)]
    default = admin.get("/api/v1/volumes").json()
    assert len(default["results"]) == 50


def test_refresh_usage_measures_the_folder(admin, create_volume):
    volume = create_volume("measured")
    Path(volume["path"], "sub").mkdir()
    Path(volume["path"], "sub", "a.bin").write_bytes(b"x" * 1000)
    Path(volume["path"], "b.bin").write_bytes(b"y" * 24)
    os.symlink("/etc/passwd", Path(volume["path"], "link"))  # not followed, not counted
    response = admin.post("/api/v1/volumes/measured/refresh-usage")
    assert response.status_code == 200 and response.json()["used_bytes"] == 1024


def test_roles_read_lists_but_only_admin_writes(api, create_volume):
    create_volume("shared")
    assert api("read").get("/api/v1/volumes").status_code == 200
    assert api("read").get("/api/v1/volumes/shared").status_code == 200
    assert_error(api("read").post("/api/v1/volumes", {"name": "x", "size_gb": 1}, format="json"), 403,
                 "permission_denied")
    assert_error(api("backup").patch("/api/v1/volumes/shared", {"size_gb": 2}, format="json"), 403,
                 "permission_denied")
    assert_error(api("backup").delete("/api/v1/volumes/shared"), 403, "permission_denied")
    assert api(None).get("/api/v1/volumes").status_code == 401
    assert api("bad").get("/api/v1/volumes").status_code == 401
    assert Volume.objects.filter(name="shared").exists()


def test_last_backup_is_the_newest_completed_one_and_lists_stay_cheap(admin, create_volume,
                                                                       django_assert_max_num_queries):
    from datetime import datetime, timezone

    volume = create_volume("protected")
    create_volume("unprotected")
    older = Backup.objects.create(volume_id=volume["id"], volume_name="protected", status=BackupStatus.COMPLETED,
                                  snapshot_id="a" * 64, completed_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    newer = Backup.objects.create(volume_id=volume["id"], volume_name="protected", status=BackupStatus.COMPLETED,
                                  snapshot_id="b" * 64, completed_at=datetime(2026, 2, 1, tzinfo=timezone.utc))
    # Newest, but retention removed its snapshot: a forgotten backup protects nothing.
    Backup.objects.create(volume_id=volume["id"], volume_name="protected", status=BackupStatus.COMPLETED,
                          snapshot_id="c" * 64, completed_at=datetime(2026, 3, 1, tzinfo=timezone.utc),
                          forgotten_at=datetime(2026, 3, 2, tzinfo=timezone.utc))
    Backup.objects.create(volume_id=volume["id"], volume_name="protected", status=BackupStatus.FAILED)
    detail = admin.get("/api/v1/volumes/protected").json()
    assert detail["last_backup"]["id"] == str(newer.pk) != str(older.pk)
    assert detail["last_backup"]["completed_at"].startswith("2026-02-01")
    Volume.objects.bulk_create([Volume(name=f"many-{index}", size_gb=1, status="available") for index in range(60)])
    # Authentication, count, one page: the number of queries does not grow with the rows.
    with django_assert_max_num_queries(8):
        page = admin.get("/api/v1/volumes", {"page_size": 100}).json()
    by_name = {row["name"]: row for row in page["results"]}
    assert by_name["protected"]["last_backup"]["id"] == str(newer.pk)
    assert by_name["unprotected"]["last_backup"] is None
