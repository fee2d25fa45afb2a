"""The collection's REST client and module logic against a real running platform API."""

from __future__ import annotations

import pytest

from tests.ops.collection import import_collection_module

pytestmark = pytest.mark.django_db(transaction=True)
client_module = import_collection_module("module_utils.platform_client")


def volume_count(client) -> int:
    return len(client.list("/api/v1/volumes"))


def test_an_unknown_volume_is_none_and_deleting_it_is_already_gone(platform_client):
    client = platform_client("admin")
    assert client.get("/api/v1/volumes/00000000-0000-0000-0000-000000000000") is None
    assert client.find_volume("no-such-volume") is None
    assert client.delete("/api/v1/volumes/00000000-0000-0000-0000-000000000000") == (False, None)


def test_bad_input_raises_the_platform_s_error_code_and_message(platform_client):
    with pytest.raises(client_module.PlatformApiError) as caught:
        platform_client("admin").post("/api/v1/volumes", {"name": "bad-size", "size_gb": 0})
    error = caught.value
    assert error.status == 400
    assert error.code == "validation_error"
    assert "size_gb" in error.message and error.message.startswith("POST /api/v1/volumes failed with HTTP 400")


def test_a_wrong_token_is_401_and_a_small_role_is_403_without_leaking_the_token(platform_client, platform_url, tokens):
    bogus = client_module.PlatformClient(platform_url, "sbp_not-a-real-token-000000000000000000", retries=0)
    with pytest.raises(client_module.PlatformApiError) as unauthenticated:
        bogus.list("/api/v1/volumes")
    assert unauthenticated.value.status == 401 and "check api_token" in unauthenticated.value.message
    assert "sbp_not-a-real-token" not in unauthenticated.value.message

    with pytest.raises(client_module.PlatformApiError) as forbidden:
        platform_client("read").post("/api/v1/volumes", {"name": "read-cannot", "size_gb": 1})
    assert forbidden.value.status == 403
    assert tokens["read"] not in str(forbidden.value.as_result())


def test_list_follows_next_links_across_pages(platform_client):
    client = platform_client("admin")
    for index in range(5):
        client.post("/api/v1/volumes", {"name": f"page-{index}", "size_gb": 1})
    names = [volume["name"] for volume in client.list("/api/v1/volumes", {"page_size": 2})]
    assert sorted(names) == [f"page-{index}" for index in range(5)]


def test_volume_module_creates_once_updates_in_check_mode_without_changing_and_deletes_once(
        run_module_logic, platform_client):
    client = platform_client("admin")
    wanted = {"name": "db-1", "size_gb": 2, "labels": {"team": "payments"}, "rpo_hours": 4}

    created = run_module_logic("volume", wanted)
    assert created["changed"] is True
    assert created["volume"]["status"] == "available"
    assert created["diff"]["before"] == {} and created["diff"]["after"]["size_gb"] == 2

    again = run_module_logic("volume", wanted)
    assert again["changed"] is False and again["changed_fields"] == []
    assert volume_count(client) == 1

    previewed = run_module_logic("volume", {**wanted, "size_gb": 3, "labels": {"tier": "gold"}}, check_mode=True)
    assert previewed["changed"] is True and previewed["changed_fields"] == ["labels", "size_gb"]
    assert previewed["diff"]["after"]["labels"] == {"team": "payments", "tier": "gold"}
    unchanged = client.find_volume("db-1")
    assert unchanged["size_gb"] == 2 and unchanged["labels"] == {"team": "payments"}

    updated = run_module_logic("volume", {"name": "db-1", "labels": {"tier": "gold"}, "purge_labels": True})
    assert updated["changed"] is True and client.find_volume("db-1")["labels"] == {"tier": "gold"}

    checked_delete = run_module_logic("volume", {"name": "db-1", "state": "absent"}, check_mode=True)
    assert checked_delete["changed"] is True and client.find_volume("db-1") is not None

    deleted = run_module_logic("volume", {"name": "db-1", "state": "absent"})
    assert deleted["changed"] is True and client.find_volume("db-1") is None
    assert run_module_logic("volume", {"name": "db-1", "state": "absent"})["changed"] is False


def test_volume_module_refuses_to_create_without_a_size(run_module_logic, platform_client):
    result = run_module_logic("volume", {"name": "no-size"})
    assert "size_gb is required" in result["failed_msg"]
    assert platform_client("admin").find_volume("no-size") is None


def test_check_mode_creates_nothing(run_module_logic, platform_client):
    result = run_module_logic("volume", {"name": "preview-only", "size_gb": 1}, check_mode=True)
    assert result["changed"] is True
    assert platform_client("admin").find_volume("preview-only") is None


def test_volume_info_filters_by_labels_and_judges_rpo_as_the_platform_s_metric_does(run_module_logic, client):
    import datetime

    from django.utils import timezone

    from volumes.models import Volume

    run_module_logic("volume", {"name": "keep", "size_gb": 1, "labels": {"temporary": "false"}})
    run_module_logic("volume", {"name": "scratch", "size_gb": 1, "labels": {"temporary": "true"}})
    temporary = run_module_logic("volume_info", {"labels": {"temporary": "true"}}, role="read")
    assert [volume["name"] for volume in temporary["volumes"]] == ["scratch"]

    # Never backed up and created a moment ago: within the RPO, as backup_rpo_violation says.
    with_rpo = run_module_logic("volume_info", {"rpo_status": True}, role="read")
    assert with_rpo["in_violation"] == []
    assert all(volume["rpo"]["reference"] == "created_at" for volume in with_rpo["volumes"])

    Volume.objects.filter(name="keep").update(created_at=timezone.now() - datetime.timedelta(hours=25))
    with_rpo = run_module_logic("volume_info", {"rpo_status": True}, role="read")
    assert with_rpo["in_violation"] == ["keep"]
    violations = {line.split('volume="')[1].split('"')[0]: line.rsplit(" ", 1)[1]
                  for line in client.get("/metrics").content.decode().splitlines()
                  if line.startswith("backup_rpo_violation{")}
    assert violations == {"keep": "1", "scratch": "0"}  # the module and the metric agree


def test_checksums_through_the_data_plane_match_the_host_path(run_module_logic, platform_client):
    client = platform_client("admin")
    volume = run_module_logic("volume", {"name": "files", "size_gb": 1})["volume"]
    for path, content in {"a.txt": b"alpha", "dir/b.bin": bytes(range(256)), "dir/deeper/c": b""}.items():
        client.upload(f"/api/v1/volumes/{volume['id']}/files/{path}", content)
    via_api = run_module_logic("volume_info", {"name": "files", "checksums": True}, role="read")["volumes"][0]
    via_path = run_module_logic("volume_info", {"name": "files", "checksums": True, "checksum_source": "path"},
                                role="read")["volumes"][0]
    assert via_api["checksums"] == via_path["checksums"]
    assert via_api["checksums"]["dir"] == "dir" and via_api["checksums"]["dir/deeper"] == "dir"
    assert via_api["checksums"]["a.txt"].startswith("sha256:")


def test_health_reports_liveness_readiness_and_version(run_module_logic):
    result = run_module_logic("health", {"require_ready": False}, role="read")
    assert result["healthy"] is True and result["health"] == {"status": "ok"}
    assert "checks" in result["readiness"]
    assert result["version"].get("version")


def test_waiting_for_an_unknown_job_fails_clearly(platform_client):
    with pytest.raises(client_module.PlatformApiError) as caught:
        platform_client("read").wait_for_job("00000000-0000-0000-0000-000000000000", timeout=1)
    assert caught.value.code == "job_not_found"


def test_job_starting_modules_fail_clearly_before_starting_anything(run_module_logic):
    with pytest.raises(client_module.PlatformApiError) as unknown:
        run_module_logic("backup", {"volume": "nowhere"}, role="backup")
    assert unknown.value.code == "volume_not_found"

    both = run_module_logic("backup", {"volume": "nowhere", "all": True}, role="backup")
    assert both["failed_msg"] == "give exactly one of volume or all=true" and both["changed"] is False

    run_module_logic("volume", {"name": "fresh", "size_gb": 1})
    with pytest.raises(client_module.PlatformApiError) as nothing_to_verify:
        run_module_logic("verify", {"volume": "fresh"}, role="backup")
    assert nothing_to_verify.value.code == "no_completed_backup"

    no_target = run_module_logic("restore", {"volume": "fresh"})
    assert no_target["failed_msg"] == "give exactly one of new_volume_name or in_place=true"

    percent = run_module_logic("verify", {"backup": "00000000-0000-0000-0000-000000000000",
                                          "read_data_percent": 101}, role="backup")
    assert "between 0 and 100" in percent["failed_msg"]


def test_a_backup_of_an_unknown_id_is_an_empty_answer_not_an_error(run_module_logic):
    result = run_module_logic("backup_info", {"id": "00000000-0000-0000-0000-000000000000"}, role="read")
    assert result == {"changed": False, "backups": [], "backup": {}}
    listed = run_module_logic("backup_info", {"volume": "never-existed", "latest": True}, role="read")
    assert listed["backups"] == [] and listed["backup"] == {}


def test_policy_module_is_idempotent_with_cron_macros_and_refuses_to_delete_a_policy_in_use(run_module_logic):
    wanted = {"name": "databases", "schedule": "@hourly", "timezone": "Europe/Berlin", "rpo_hours": 2,
              "retention": {"keep_hourly": 48, "keep_daily": 31}}
    created = run_module_logic("policy", wanted)
    assert created["changed"] is True and created["policy"]["schedule"] == "0 * * * *"
    assert run_module_logic("policy", wanted)["changed"] is False

    preview = run_module_logic("policy", {**wanted, "rpo_hours": 4}, check_mode=True)
    assert preview["changed"] is True and preview["changed_fields"] == ["rpo_hours"]
    assert run_module_logic("policy", {"name": "databases"})["policy"]["rpo_hours"] == 2

    # keep_good and the drill schedule (a macro, stored as its expression) converge the same way.
    protected = {**wanted, "keep_good": 5, "drill_schedule": "@weekly"}
    changed = run_module_logic("policy", protected)
    assert changed["changed_fields"] == ["drill_schedule", "keep_good"]
    assert (changed["policy"]["keep_good"], changed["policy"]["drill_schedule"]) == (5, "0 0 * * 0")
    assert run_module_logic("policy", protected)["changed"] is False
    # So does the replication schedule; a target the platform does not have fails with its reason.
    replicated = {**protected, "replication_schedule": "@hourly"}
    assert run_module_logic("policy", replicated)["changed_fields"] == ["replication_schedule"]
    assert run_module_logic("policy", replicated)["changed"] is False
    with pytest.raises(client_module.PlatformApiError) as unknown_target:
        run_module_logic("policy", {**replicated, "replication_target": "nowhere"})
    assert unknown_target.value.code == "unknown_replication_target"

    volume = run_module_logic("volume", {"name": "db-9", "size_gb": 1, "policy": "databases"})["volume"]
    assert volume["policy"] == "databases" and volume["rpo_hours"] == 2
    assert run_module_logic("volume", {"name": "db-9", "policy": str(volume["policy_id"])})["changed"] is False

    with pytest.raises(client_module.PlatformApiError) as in_use:
        run_module_logic("policy", {"name": "databases", "state": "absent"})
    assert in_use.value.status == 409

    run_module_logic("volume", {"name": "db-9", "state": "absent"})
    assert run_module_logic("policy", {"name": "databases", "state": "absent"})["changed"] is True
    assert run_module_logic("policy", {"name": "databases", "state": "absent"})["changed"] is False


def test_policy_module_sends_the_object_lock_and_reports_the_platform_s_refusal(run_module_logic):
    plain = {"name": "unlocked", "lock_mode": "none", "lock_days": 0}
    assert run_module_logic("policy", plain)["policy"]["lock_mode"] == ""
    assert run_module_logic("policy", plain)["changed"] is False
    # the live platform stores backups in a local directory, which cannot lock objects
    with pytest.raises(client_module.PlatformApiError) as refused:
        run_module_logic("policy", {"name": "unlocked", "lock_mode": "governance", "lock_days": 30})
    assert refused.value.status == 400 and "lock_mode" in refused.value.message
    assert run_module_logic("policy", {"name": "unlocked"})["policy"]["lock_days"] == 0
