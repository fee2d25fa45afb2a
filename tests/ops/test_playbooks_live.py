"""The lifecycle playbooks, run with ansible-playbook (connection: local) against a real
platform API served by pytest-django's live server (with a real Celery worker where jobs
run). Each runs three ways: once, a second time (changed=false where it should), and under
--check (changing nothing); the failure cases of cleanup, validate and the health check are
run too. lcm_upgrade.yml runs against a real deployment in test_lcm_upgrade_live.py."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pytest

from tests.ops.collection import run_ansible_tool
from tests.ops.conftest import OPS_BROKER_URL
from tests.support.services import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class Run:
    """One ansible-playbook run: return code, output, and the recap's counts."""

    def __init__(self, completed):
        self.code = completed.returncode
        self.output = completed.stdout + completed.stderr
        recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", self.output)
        self.counts = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recap.groups()), strict=True)) if recap else {}

    @property
    def changed(self) -> int:
        return self.counts["changed"]


def run_playbook(playbook: str, platform_url: str, tokens: dict, tmp_path: Path, extra_vars: dict | None = None,
                 *options: str, timeout: float = 300) -> Run:
    variables = tmp_path / f"vars-{playbook}-{len(list(tmp_path.glob('vars-*.json')))}.json"
    variables.write_text(json.dumps(extra_vars or {}))
    run = Run(run_ansible_tool(
        "ansible-playbook", "-i", "localhost,", f"playbooks/{playbook}", "-e", f"@{variables}", *options,
        timeout=timeout,
        STORAGE_PLATFORM_URL=platform_url,
        STORAGE_PLATFORM_ADMIN_TOKEN=tokens["admin"],
        STORAGE_PLATFORM_BACKUP_TOKEN=tokens["backup"],
        STORAGE_PLATFORM_READ_TOKEN=tokens["read"],
    ))
    variables.with_suffix(".log").write_text(run.output)  # kept by pytest for the last runs
    for role, token in tokens.items():
        assert not token or token not in run.output, f"the {role} token appeared in ansible output"
    return run


@pytest.fixture
def live_worker(own_repository, celery_worker_factory):
    """A worker on this test's own repository (packs other tests wrote, or damaged, do not count)."""
    return celery_worker_factory(broker_url=OPS_BROKER_URL, queues=("backup", "backup.local", "maintenance", "default"))


def age_volume(name: str, hours: float) -> None:
    from django.utils import timezone

    from volumes.models import Volume

    Volume.objects.filter(name=name).update(created_at=timezone.now() - datetime.timedelta(hours=hours))


def backups_of(client, volume_id: str) -> list[dict]:
    return client.list("/api/v1/backups", {"volume": volume_id})


# --- storage_provision.yml ---------------------------------------------------------------------
POLICIES = [{"name": "web", "schedule": "@daily", "timezone": "UTC", "retention": {"keep_daily": 7}}]
VOLUMES = [
    {"name": "app-data", "size_gb": 2, "rpo_hours": 6, "labels": {"team": "web"}, "policy": "web"},
    {"name": "app-logs", "size_gb": 1},
]


@pytest.mark.slow  # several ansible-playbook runs
def test_storage_provision_creates_then_changes_nothing_and_check_mode_only_previews(
        platform_url, tokens, tmp_path, platform_client):
    client = platform_client("admin")
    wanted = {"platform_volumes": VOLUMES, "platform_policies": POLICIES}
    first = run_playbook("storage_provision.yml", platform_url, tokens, tmp_path, wanted)
    assert first.code == 0, first.output
    assert first.changed == 2 and first.counts["failed"] == 0  # the policy task and the volume task
    created = client.find_volume("app-data")
    assert created["size_gb"] == 2 and created["rpo_hours"] == 6 and created["labels"] == {"team": "web"}
    assert created["policy"] == "web"

    second = run_playbook("storage_provision.yml", platform_url, tokens, tmp_path, wanted)
    assert second.code == 0 and second.changed == 0, second.output

    bigger = {"platform_volumes": [{**VOLUMES[0], "size_gb": 5}, VOLUMES[1]], "platform_policies": POLICIES}
    checked = run_playbook("storage_provision.yml", platform_url, tokens, tmp_path, bigger, "--check", "--diff")
    assert checked.code == 0, checked.output
    assert checked.changed == 1 and re.search(r'"?size_gb"?: 5', checked.output)
    assert client.find_volume("app-data")["size_gb"] == 2


def test_storage_provision_rejects_an_entry_without_a_size_before_calling_the_api(tokens, tmp_path):
    # An address nobody listens on: a call to the API would fail with "cannot reach".
    run = run_playbook("storage_provision.yml", f"http://127.0.0.1:{free_port()}", tokens, tmp_path,
                       {"platform_volumes": [{"name": "sizeless"}]})
    assert run.code != 0
    assert "needs a name and, unless state is absent, a positive size_gb" in run.output
    assert "cannot reach" not in run.output


def test_a_play_without_its_token_names_the_variable_to_set(platform_url, tokens, tmp_path):
    run = run_playbook("lcm_health_check.yml", platform_url, {**tokens, "read": "", "backup": "", "admin": ""}, tmp_path)
    assert run.code != 0
    assert "the read token is empty: set STORAGE_PLATFORM_READ_TOKEN" in run.output


# --- backup_trigger.yml ------------------------------------------------------------------------------
@pytest.mark.slow
def test_backup_trigger_backs_up_once_then_skips_recent_backups_and_check_mode_starts_nothing(
        platform_url, tokens, tmp_path, platform_client, run_module_logic, live_worker):
    client = platform_client("admin")
    volume = run_module_logic("volume", {"name": "data-1", "size_gb": 1})["volume"]
    client.upload(f"/api/v1/volumes/{volume['id']}/files/a.txt", b"alpha")
    wanted = {"backup_all": True, "backup_min_age_minutes": 60}

    first = run_playbook("backup_trigger.yml", platform_url, tokens, tmp_path, wanted)
    assert first.code == 0, first.output
    assert first.changed == 1 and "1 backups succeeded, 0 volumes skipped" in first.output
    assert [backup["status"] for backup in backups_of(client, volume["id"])] == ["completed"]

    second = run_playbook("backup_trigger.yml", platform_url, tokens, tmp_path, wanted)
    assert second.code == 0, second.output
    assert second.changed == 0 and re.search(r"data-1: backed up \d+ minutes ago \(last_backup_min_age is 60\)", second.output)
    assert len(backups_of(client, volume["id"])) == 1

    checked = run_playbook("backup_trigger.yml", platform_url, tokens, tmp_path, wanted, "--check")
    assert checked.code == 0 and checked.changed == 0, checked.output
    unconditional = run_playbook("backup_trigger.yml", platform_url, tokens, tmp_path,
                                 {"backup_volumes": ["data-1"]}, "--check")
    assert unconditional.code == 0 and unconditional.changed == 1, unconditional.output  # would back up
    assert len(backups_of(client, volume["id"])) == 1


# --- backup_validate.yml -----------------------------------------------------------------------------
def verified_pack_ids() -> set[str]:
    """Packs a verify has read (a backup also records its packs, as never verified)."""
    from backups.models import PackVerification

    return set(PackVerification.objects.filter(verified_at__isnull=False).values_list("pack_id", flat=True))


def pack_files(repository: Path) -> dict[str, Path]:
    return {path.name: path for path in (repository / "data").rglob("*") if path.is_file()}


@pytest.mark.slow
def test_backup_validate_passes_twice_check_mode_skips_the_jobs_and_a_flipped_byte_fails_it(
        platform_url, tokens, tmp_path, platform_client, run_module_logic, live_worker, own_repository):
    from backups.models import Job, JobKind

    client = platform_client("admin")
    canary = run_module_logic("volume", {"name": "canary", "size_gb": 1})["volume"]
    for path, content in {"hello.txt": b"hello", "nested/data.bin": bytes(range(256)) * 64, "empty": b""}.items():
        client.upload(f"/api/v1/volumes/{canary['id']}/files/{path}", content)
    report_path = tmp_path / "report.json"
    wanted = {"validate_drill_volume": "canary", "validate_report_path": str(report_path)}

    first = run_playbook("backup_validate.yml", platform_url, tokens, tmp_path, wanted)
    assert first.code == 0, first.output
    assert re.search(r"restore drill of canary: \d+ entries identical", first.output), first.output
    # The drill's backup and the report file; the temporary volume leaves nothing behind.
    assert first.changed == 2, first.output
    assert [volume["name"] for volume in client.list("/api/v1/volumes")] == ["canary"]
    report = json.loads(report_path.read_text())
    assert report["checks"]["rpo"]["passed"] and report["checks"]["restore_drill"]["passed"]
    assert report["checks"]["verify"]["passed"] and report["checks"]["health"]["passed"]

    packs_after_first = set(pack_files(own_repository))
    second = run_playbook("backup_validate.yml", platform_url, tokens, tmp_path, wanted)
    assert second.code == 0 and second.changed == 2, second.output
    # The first run's drill wrote packs after its verify: the second run's verify read them.
    assert packs_after_first <= verified_pack_ids()

    backups_before = len(backups_of(client, canary["id"]))
    verifies_before = Job.objects.filter(kind=JobKind.VERIFY).count()
    report_before = report_path.read_text()
    checked = run_playbook("backup_validate.yml", platform_url, tokens, tmp_path, wanted, "--check")
    assert checked.code == 0 and checked.changed == 0, checked.output
    assert "check mode: the verify job and the restore drill are skipped" in checked.output
    assert len(backups_of(client, canary["id"])) == backups_before
    assert Job.objects.filter(kind=JobKind.VERIFY).count() == verifies_before
    assert report_path.read_text() == report_before

    # New data, backed up after the last verify, then one flipped byte in a pack it wrote.
    client.upload(f"/api/v1/volumes/{canary['id']}/files/new.bin", bytes(range(251)) * 400)
    run_module_logic("backup", {"volume": "canary", "wait_timeout": 120}, role="backup")
    verified = verified_pack_ids()
    new_packs = {name: path for name, path in pack_files(own_repository).items() if name not in verified}
    assert new_packs
    damaged_id, damaged_path = max(new_packs.items(), key=lambda item: item[1].stat().st_size)
    content = bytearray(damaged_path.read_bytes())
    content[len(content) // 2] ^= 0x01
    damaged_path.write_bytes(bytes(content))

    failed = run_playbook("backup_validate.yml", platform_url, tokens, tmp_path, {**wanted, "validate_restore_drill": False})
    assert failed.code != 0
    assert "validation failed: verify:" in failed.output and f"damaged packs: {damaged_id}" in failed.output
    report = json.loads(report_path.read_text())
    assert report["checks"]["verify"]["passed"] is False and damaged_id in report["checks"]["verify"]["damaged_packs"]


def test_backup_validate_fails_naming_the_volumes_past_their_rpo_but_not_a_new_one(
        platform_url, tokens, tmp_path, run_module_logic):
    run_module_logic("volume", {"name": "forgotten", "size_gb": 1})
    run_module_logic("volume", {"name": "brand-new", "size_gb": 1})
    age_volume("forgotten", hours=25)  # RPO 24 h, never backed up
    run = run_playbook("backup_validate.yml", platform_url, tokens, tmp_path,
                       {"validate_restore_drill": False, "validate_verify": False,
                        "validate_report_path": str(tmp_path / "report.json")})
    assert run.code != 0
    assert "validation failed: volumes without a completed backup within their RPO: forgotten (report:" in run.output
    assert json.loads((tmp_path / "report.json").read_text())["checks"]["rpo"]["in_violation"] == ["forgotten"]


# --- cleanup.yml ----------------------------------------------------------------------------------
def make_orphaned_backup(days_old: int):
    """A completed backup row of a volume that no longer exists, `days_old` days old."""
    import uuid

    from django.utils import timezone

    from backups.models import Backup, BackupStatus

    created = timezone.now() - datetime.timedelta(days=days_old)
    backup = Backup.objects.create(volume_id=uuid.uuid4(), volume_name="gone", status=BackupStatus.COMPLETED,
                                   completed_at=created)
    Backup.objects.filter(pk=backup.pk).update(created_at=created)  # auto_now_add ignores a given value
    return backup


@pytest.mark.parametrize("selector", [None, "", "temporary", "temporary=true,,team=web"])
def test_cleanup_without_a_valid_selector_fails_before_any_api_call(selector, tokens, tmp_path):
    extra = {} if selector is None else {"cleanup_selector": selector}
    run = run_playbook("cleanup.yml", f"http://127.0.0.1:{free_port()}", tokens, tmp_path, {**extra, "confirm_cleanup": True})
    assert run.code != 0
    assert "set cleanup_selector to the labels of the volumes to delete" in run.output
    assert "cannot reach" not in run.output


def test_cleanup_refuses_a_selector_that_matches_every_volume(platform_url, tokens, tmp_path, run_module_logic,
                                                               platform_client):
    for name in ("scratch-1", "scratch-2"):
        run_module_logic("volume", {"name": name, "size_gb": 1, "labels": {"temporary": "true"}})
    run = run_playbook("cleanup.yml", platform_url, tokens, tmp_path,
                       {"cleanup_selector": "temporary=true", "confirm_cleanup": True})
    assert run.code != 0
    assert "matches every one of the 2 volumes; refusing to delete them all" in run.output
    assert len(platform_client("admin").list("/api/v1/volumes")) == 2


@pytest.mark.slow  # several ansible-playbook runs
def test_cleanup_lists_then_deletes_only_when_confirmed_and_check_mode_deletes_and_forgets_nothing(
        platform_url, tokens, tmp_path, run_module_logic, platform_client):
    client = platform_client("admin")
    for name, labels in (("keep-me", {"temporary": "false"}), ("scratch-1", {"temporary": "true"}),
                         ("drill-old-1", {"temporary": "true", "drill_of": "canary"})):
        run_module_logic("volume", {"name": name, "size_gb": 1, "labels": labels})
    orphan, recent_orphan = make_orphaned_backup(days_old=40), make_orphaned_backup(days_old=1)

    def names() -> list[str]:
        return sorted(volume["name"] for volume in client.list("/api/v1/volumes"))

    def backup_ids() -> set[str]:
        return {backup["id"] for backup in platform_client("read").list("/api/v1/backups")}

    listed = run_playbook("cleanup.yml", platform_url, tokens, tmp_path,
                          {"cleanup_selector": "temporary=true", "cleanup_prune": True})
    assert listed.code == 0 and listed.changed == 0, listed.output
    assert "2 volumes match temporary=true: drill-old-1, scratch-1; not deleting: add -e confirm_cleanup=true" in listed.output
    assert names() == ["drill-old-1", "keep-me", "scratch-1"]

    narrowed = run_playbook("cleanup.yml", platform_url, tokens, tmp_path,
                            {"cleanup_selector": "temporary = true, drill_of=canary", "cleanup_name_prefix": "drill-"})
    assert "1 volumes match" in narrowed.output and "drill-old-1;" in narrowed.output, narrowed.output

    confirmed = {"cleanup_selector": "temporary=true", "confirm_cleanup": True, "cleanup_prune": True}
    checked = run_playbook("cleanup.yml", platform_url, tokens, tmp_path, confirmed, "--check")
    assert checked.code == 0 and checked.changed >= 1, checked.output
    assert names() == ["drill-old-1", "keep-me", "scratch-1"]
    assert {str(orphan.pk), str(recent_orphan.pk)} <= backup_ids()

    first = run_playbook("cleanup.yml", platform_url, tokens, tmp_path, confirmed)
    assert first.code == 0 and first.changed == 2, first.output  # the delete task and the forget task
    assert names() == ["keep-me"]
    assert "1 backups of deleted volumes older than 30 days" in first.output
    assert str(orphan.pk) not in backup_ids() and str(recent_orphan.pk) in backup_ids()

    second = run_playbook("cleanup.yml", platform_url, tokens, tmp_path, confirmed)
    assert second.code == 0 and second.changed == 0, second.output
    assert "0 volumes match temporary=true: none" in second.output


# --- lcm_health_check.yml ---------------------------------------------------------------------------
def record_liveness() -> None:
    """A worker heartbeat and a beat tick as of now, as running processes write them (the
    real processes are exercised in test_lcm_upgrade_live.py)."""
    from monitoring import heartbeat, scheduler

    heartbeat.beat("worker@ops-test", "backup,maintenance,default")
    scheduler.record_tick(starting=True)


def test_lcm_health_check_passes_twice_and_under_check_without_changing_anything(
        platform_url, tokens, tmp_path, run_module_logic):
    record_liveness()
    run_module_logic("volume", {"name": "fresh", "size_gb": 1})
    for options in ((), (), ("--check",)):
        run = run_playbook("lcm_health_check.yml", platform_url, tokens, tmp_path, {}, *options)
        assert run.code == 0 and run.changed == 0, run.output
        assert "healthy: version" in run.output and "1 workers alive, 1 volumes within their RPO" in run.output


def test_lcm_health_check_fails_naming_each_problem(platform_url, tokens, tmp_path, run_module_logic):
    from monitoring.models import WorkerHeartbeat

    run_module_logic("volume", {"name": "forgotten", "size_gb": 1})
    age_volume("forgotten", hours=30)
    run = run_playbook("lcm_health_check.yml", platform_url, tokens, tmp_path,
                       {"health_expected_version": "9.9.9",
                        "health_required_metrics": ["storage_volume_count", "backup_missing_metric"]})
    assert run.code != 0
    assert "5 problems:" in run.output, run.output
    for problem in ("workers: no worker sent a heartbeat in the last", "beat: beat has never ticked",
                    "version: running 1.0.0", "expected 9.9.9", "metrics: /metrics lacks backup_missing_metric"):
        assert problem in run.output, run.output
    assert re.search(r"RPO: forgotten \(30\.\d+ h since its creation, never backed up, RPO 24 h\)", run.output)
    assert not WorkerHeartbeat.objects.exists()
