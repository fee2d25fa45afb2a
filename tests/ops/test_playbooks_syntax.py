"""Every operational playbook parses, resolves its modules and roles, and lists its tasks."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.ops.collection import ANSIBLE_DIR, PLAYBOOKS_DIR, REPOSITORY_ROOT, run_ansible_tool

PLAYBOOKS = sorted(path.name for path in PLAYBOOKS_DIR.glob("*.yml"))
TASK_FILES = sorted(path.name for path in (PLAYBOOKS_DIR / "tasks").glob("*.yml"))
INVENTORY = str(ANSIBLE_DIR / "inventory" / "example.yml")
BRIEF_PLAYBOOKS = {"storage_provision.yml", "backup_trigger.yml", "backup_validate.yml", "cleanup.yml",
                   "lcm_upgrade.yml", "lcm_health_check.yml"}


def test_the_playbooks_are_exactly_the_brief_s():
    assert set(PLAYBOOKS) == BRIEF_PLAYBOOKS


def test_no_document_names_a_playbook_by_an_old_name():
    old = re.compile(r"playbooks/(provision|backup|validate|upgrade)\.yml|\b(provision|validate|upgrade)\.yml")
    documents = [REPOSITORY_ROOT / "README.md", *(REPOSITORY_ROOT / "docs").glob("*.md"), *ANSIBLE_DIR.rglob("*.md"),
                 *ANSIBLE_DIR.rglob("*.yml"), *ANSIBLE_DIR.rglob("*.cfg"), *(REPOSITORY_ROOT / "deploy").rglob("*")]
    for document in documents:
        if document.is_file() and "tests/output" not in str(document):
            assert not old.search(document.read_text(errors="replace")), f"{document} names an old playbook"


def test_every_playbook_passes_syntax_check():
    # One ansible-playbook run for all of them: it checks each playbook named and names the one
    # that fails.
    completed = run_ansible_tool("ansible-playbook", "--syntax-check", "-i", INVENTORY,
                                 *(f"playbooks/{playbook}" for playbook in PLAYBOOKS))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ERROR" not in completed.stderr
    for playbook in PLAYBOOKS:
        assert f"playbook: playbooks/{playbook}" in completed.stdout, completed.stdout


@pytest.mark.parametrize("playbook", PLAYBOOKS + [f"tasks/{name}" for name in TASK_FILES])
def test_every_task_is_named_and_uses_fully_qualified_modules(playbook):
    plays = yaml.safe_load((PLAYBOOKS_DIR / playbook).read_text())
    if playbook.startswith("tasks/"):
        plays = [{"name": playbook, "tasks": plays}]
    keywords = {"name", "when", "vars", "register", "loop", "loop_control", "until", "retries", "delay",
                "changed_when", "failed_when", "ignore_errors", "check_mode", "no_log", "run_once",
                "delegate_to", "become", "become_user", "block", "always", "rescue", "tags", "module_defaults"}

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


def test_upgrade_runs_in_one_block_whose_rescue_rolls_back_and_turns_maintenance_off():
    [play] = yaml.safe_load((PLAYBOOKS_DIR / "lcm_upgrade.yml").read_text())
    [upgrade] = [task for task in play["tasks"] if "block" in task]
    block_names = [task["name"] for task in upgrade["block"]]
    assert block_names.index("Maintenance mode on, on every API host") < block_names.index("Dump the database") \
        < block_names.index("Install the new version on every host") < block_names.index("Rolling restart of the workers") \
        < block_names.index("Maintenance mode off, on every API host") < block_names.index("The platform runs the version installed")
    [rollback] = [task for task in upgrade["rescue"] if "block" in task]
    assert [task["name"] for task in rollback["always"]] == ["Maintenance mode off, on every API host"]
    assert {"Restore the database from the dump", "Put the previous version back on every host"} <= {
        task["name"] for task in rollback["block"]}
    assert "ansible.builtin.fail" in upgrade["rescue"][-1]
    post_check = upgrade["block"][block_names.index("The platform runs the version installed")]
    assert "expected_version" in post_check["storage_platform.backup.health"]
