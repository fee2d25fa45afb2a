"""The operational playbooks, run with ansible-playbook (connection: local) against a real
platform API served by pytest-django's live server."""

from __future__ import annotations

import json
import re

import pytest

from tests.ops.collection import run_ansible_tool
from tests.ops.conftest import OPS_BROKER_URL

pytestmark = pytest.mark.django_db(transaction=True)


def run_playbook(playbook: str, platform_url: str, tokens: dict, tmp_path, extra_vars: dict | None = None,
                 *options: str, timeout: float = 240):
    """Run one playbook; answer (return code, output, {task counts of the recap})."""
    variables = tmp_path / f"vars-{playbook}.json"
    variables.write_text(json.dumps(extra_vars or {}))
    completed = run_ansible_tool(
        "ansible-playbook", "-i", "localhost,", f"playbooks/{playbook}", "-e", f"@{variables}", *options,
        timeout=timeout,
        STORAGE_PLATFORM_URL=platform_url,
        STORAGE_PLATFORM_ADMIN_TOKEN=tokens["admin"],
        STORAGE_PLATFORM_BACKUP_TOKEN=tokens["backup"],
        STORAGE_PLATFORM_READ_TOKEN=tokens["read"],
    )
    output = completed.stdout + completed.stderr
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    counts = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recap.groups()), strict=True)) if recap else {}
    return completed.returncode, output, counts


def assert_no_token_in(output: str, tokens: dict) -> None:
    for role, token in tokens.items():
        assert token not in output, f"the {role} token appeared in ansible output"


POLICIES = [{"name": "web", "schedule": "@daily", "timezone": "UTC", "retention": {"keep_daily": 7}}]
VOLUMES = [
    {"name": "app-data", "size_gb": 2, "rpo_hours": 6, "labels": {"team": "web"}, "policy": "web"},
    {"name": "app-logs", "size_gb": 1},
]


@pytest.mark.slow  # several ansible-playbook runs: > 10 s
def test_provision_creates_volumes_then_changes_nothing_and_check_mode_only_previews(
        platform_url, tokens, tmp_path, platform_client):
    client = platform_client("admin")
    code, output, counts = run_playbook("provision.yml", platform_url, tokens, tmp_path,
                                        {"platform_volumes": VOLUMES, "platform_policies": POLICIES})
    assert code == 0, output
    assert counts["changed"] == 2 and counts["failed"] == 0  # the policy task and the volume task
    created = client.find_volume("app-data")
    assert created["size_gb"] == 2 and created["rpo_hours"] == 6 and created["labels"] == {"team": "web"}
    assert created["policy"] == "web"

    code, output, counts = run_playbook("provision.yml", platform_url, tokens, tmp_path,
                                        {"platform_volumes": VOLUMES, "platform_policies": POLICIES})
    assert code == 0, output
    assert counts["changed"] == 0, output

    bigger = [{**VOLUMES[0], "size_gb": 5}, VOLUMES[1]]
    code, output, counts = run_playbook("provision.yml", platform_url, tokens, tmp_path,
                                        {"platform_volumes": bigger, "platform_policies": POLICIES},
                                        "--check", "--diff")
    assert code == 0, output
    assert counts["changed"] == 1 and '"size_gb": 5' in output.replace("size_gb: 5", '"size_gb": 5')
    assert client.find_volume("app-data")["size_gb"] == 2
    assert_no_token_in(output, tokens)


def test_provision_rejects_an_entry_without_a_size_before_calling_the_api(platform_url, tokens, tmp_path,
                                                                          platform_client):
    code, output, _ = run_playbook("provision.yml", platform_url, tokens, tmp_path,
                                   {"platform_volumes": [{"name": "sizeless"}]})
    assert code != 0
    assert "needs a name and, unless state is absent, a positive size_gb" in output
    assert platform_client("admin").find_volume("sizeless") is None


def make_orphaned_backup(days_old: int):
    """A completed backup row of a volume that no longer exists, `days_old` days old."""
    import datetime
    import uuid

    from django.utils import timezone

    from backups.models import Backup, BackupStatus

    created = timezone.now() - datetime.timedelta(days=days_old)
    backup = Backup.objects.create(volume_id=uuid.uuid4(), volume_name="gone", status=BackupStatus.COMPLETED,
                                   completed_at=created)
    Backup.objects.filter(pk=backup.pk).update(created_at=created)  # auto_now_add ignores a given value
    return backup


@pytest.mark.slow  # several ansible-playbook runs: > 10 s
def test_cleanup_removes_temporary_volumes_and_forgets_old_orphaned_backups(platform_url, tokens, tmp_path,
                                                                       run_module_logic, platform_client):
    for name, labels in (("keep-me", {}), ("scratch-1", {"temporary": "true"}), ("drill-old-1", {})):
        run_module_logic("volume", {"name": name, "size_gb": 1, "labels": labels})

    # (cleanup_dry_run only sets check_mode on the delete task; the volume module's check mode
    # is covered in test_platform_client_live.py, so one playbook run keeps this test short.)
    orphan = make_orphaned_backup(days_old=40)
    recent_orphan = make_orphaned_backup(days_old=1)
    code, output, _ = run_playbook("cleanup.yml", platform_url, tokens, tmp_path, {"cleanup_prune": True})
    assert code == 0, output
    assert "2 temporary volumes: drill-old-1, scratch-1" in output
    assert "1 backups of deleted volumes older than 30 days" in output
    backup_ids = {backup["id"] for backup in platform_client("read").list("/api/v1/backups")}
    assert str(orphan.pk) not in backup_ids and str(recent_orphan.pk) in backup_ids
    remaining = [volume["name"] for volume in platform_client("admin").list("/api/v1/volumes")]
    assert remaining == ["keep-me"]


@pytest.mark.slow  # several ansible-playbook runs: > 10 s
def test_validate_fails_naming_the_volumes_that_violate_their_rpo(platform_url, tokens, tmp_path, run_module_logic):
    run_module_logic("volume", {"name": "never-backed-up", "size_gb": 1})
    code, output, _ = run_playbook("validate.yml", platform_url, tokens, tmp_path, {"validate_restore_drill": False})
    assert code != 0
    assert "volumes without a completed backup within their RPO: never-backed-up" in output


@pytest.mark.slow
def test_backup_then_validate_with_a_restore_drill_against_a_real_worker(
        platform_url, tokens, tmp_path, run_module_logic, platform_client, celery_worker_factory):
    celery_worker_factory(broker_url=OPS_BROKER_URL)
    client = platform_client("admin")
    canary = run_module_logic("volume", {"name": "canary", "size_gb": 1, "labels": {"purpose": "drill"}})["volume"]
    for path, content in {"hello.txt": b"hello", "nested/data.bin": bytes(range(256)) * 64, "empty": b""}.items():
        client.upload(f"/api/v1/volumes/{canary['id']}/files/{path}", content)

    first = run_module_logic("backup", {"volume": "canary", "wait": False}, role="backup")
    second = run_module_logic("backup", {"volume": "canary", "wait": False}, role="backup")
    assert first["changed"] is True and first["backup"]["status"] in ("queued", "running", "completed")
    if second["attached"]:  # the first was still queued or running: awaited, not duplicated
        assert second["changed"] is False and second["backup"]["id"] == first["backup"]["id"]
    finished = run_module_logic("job_info", {"id": first["backup"]["job"], "wait": True, "wait_timeout": 60})
    assert finished["job"]["status"] == "succeeded" and "failed_msg" not in finished
    run_module_logic("job_info", {"id": second["backup"]["job"], "wait": True, "wait_timeout": 60})
    assert run_module_logic("job_info", {"status": ["queued", "running"]}, role="read")["jobs"] == []

    code, output, counts = run_playbook("backup.yml", platform_url, tokens, tmp_path, {"backup_volumes": ["canary"]})
    assert code == 0, output
    assert "1 backups succeeded" in output
    completed = client.list("/api/v1/backups", {"volume": canary["id"], "status": "completed"})
    assert len(completed) >= 2 and completed[0]["stats"]

    code, output, counts = run_playbook("validate.yml", platform_url, tokens, tmp_path,
                                        {"validate_drill_volume": "canary", "validate_read_data_percent": 100})
    assert code == 0, output
    assert "all 1 volumes are within their RPO" in output
    assert re.search(r"restore drill of canary: \d+ entries identical", output), output
    names = [volume["name"] for volume in client.list("/api/v1/volumes")]
    assert names == ["canary"], "the drill's temporary volume must be deleted"
    assert_no_token_in(output, tokens)


@pytest.mark.slow  # one ansible-playbook run of several plays: > 10 s under load
def test_upgrade_runs_its_api_facing_plays_against_the_platform(platform_url, tokens, tmp_path):
    # With an inventory of only localhost, the host plays (maintenance, install, restarts)
    # match no host and are skipped; pre-flight, backup-all, drain and post-checks run for real.
    code, output, counts = run_playbook("upgrade.yml", platform_url, tokens, tmp_path,
                                        {"platform_version": "9.9.9", "upgrade_drain_timeout": 10})
    assert code == 0, output
    assert "upgrading from 1.0.0 to 9.9.9" in output
    assert "platform now reports version 1.0.0 (wanted 9.9.9)" in output
    assert counts["failed"] == 0
    assert_no_token_in(output, tokens)


def test_upgrade_refuses_to_run_without_a_version(platform_url, tokens, tmp_path):
    code, output, _ = run_playbook("upgrade.yml", platform_url, tokens, tmp_path, {})
    assert code != 0
    assert "set platform_version" in output
