"""Every operational playbook parses, resolves its modules and roles, and lists its tasks."""

from __future__ import annotations

import pytest
import yaml

from tests.ops.collection import ANSIBLE_DIR, PLAYBOOKS_DIR, run_ansible_tool

PLAYBOOKS = sorted(path.name for path in PLAYBOOKS_DIR.glob("*.yml"))
INVENTORY = str(ANSIBLE_DIR / "inventory" / "example.yml")


def test_the_brief_s_playbooks_exist():
    assert {"provision.yml", "backup.yml", "validate.yml", "cleanup.yml", "upgrade.yml"} <= set(PLAYBOOKS)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_passes_syntax_check(playbook):
    completed = run_ansible_tool("ansible-playbook", "--syntax-check", "-i", INVENTORY, f"playbooks/{playbook}")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ERROR" not in completed.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_task_is_named_and_uses_fully_qualified_modules(playbook):
    plays = yaml.safe_load((PLAYBOOKS_DIR / playbook).read_text())
    keywords = {"name", "when", "vars", "register", "loop", "loop_control", "until", "retries", "delay",
                "changed_when", "failed_when", "ignore_errors", "check_mode", "no_log", "run_once",
                "delegate_to", "become", "become_user", "block", "always", "rescue", "tags"}

    def walk(tasks):
        for task in tasks or []:
            assert task.get("name"), f"unnamed task in {playbook}: {task}"
            for section in ("block", "always", "rescue"):
                walk(task.get(section))
            actions = set(task) - keywords
            if "block" not in task:
                assert len(actions) == 1, f"{task['name']}: expected one action, got {actions}"
                assert next(iter(actions)).count(".") == 2, f"{task['name']}: use the FQCN of {actions}"

    for play in plays:
        assert play.get("name")
        walk(play.get("tasks"))


def test_upgrade_turns_maintenance_off_after_turning_it_on_and_restarts_one_host_at_a_time():
    plays = yaml.safe_load((PLAYBOOKS_DIR / "upgrade.yml").read_text())
    names = [play["name"] for play in plays]
    assert names.index("Maintenance mode on") < names.index("Scheduler back on, maintenance mode off")
    rolling = [play for play in plays if play["name"].startswith("Rolling restart")]
    assert rolling and all(play.get("serial") == 1 for play in rolling)
