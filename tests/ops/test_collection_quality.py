"""The collection as ansible-test and ansible-lint see it, its metadata, and its own unit and
integration tests (tests/unit, tests/integration inside the collection)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.ops.collection import (
    ANSIBLE_DIR,
    BIN_DIR,
    COLLECTION_DIR,
    COLLECTIONS_PATH,
    MODULE_NAMES,
    PLAYBOOKS_DIR,
    REPOSITORY_ROOT,
    ansible_environment,
    run_ansible_tool,
)
from tests.support.services import require_service

GALAXY = yaml.safe_load((COLLECTION_DIR / "galaxy.yml").read_text())


def test_galaxy_metadata_is_real():
    text = (COLLECTION_DIR / "galaxy.yml").read_text()
    assert "example.invalid" not in text
    assert (GALAXY["namespace"], GALAXY["name"]) == ("storage_platform", "backup")
    assert re.fullmatch(r"\d+\.\d+\.\d+", GALAXY["version"])
    assert GALAXY["authors"] and GALAXY["description"] and GALAXY["license"] == ["GPL-3.0-or-later"]
    assert (COLLECTION_DIR / GALAXY["readme"]).is_file()


def test_the_action_group_is_named_after_the_collection_and_holds_every_module():
    groups = yaml.safe_load((COLLECTION_DIR / "meta" / "runtime.yml").read_text())["action_groups"]
    assert list(groups) == [GALAXY["name"]]
    assert sorted(groups[GALAXY["name"]]) == MODULE_NAMES
    for playbook in [*PLAYBOOKS_DIR.glob("*.yml"), *(PLAYBOOKS_DIR / "tasks").glob("*.yml")]:
        groups_used = set(re.findall(r"group/([\w.]+):", playbook.read_text()))
        assert groups_used <= {"storage_platform.backup.backup"}, playbook.name


def test_changelog_fragments_name_known_sections_for_the_next_release():
    config = yaml.safe_load((COLLECTION_DIR / "changelogs" / "config.yaml").read_text())
    sections = {name for name, _title in config["sections"]} | {config["prelude_section_name"], config["trivial_section_name"]}
    fragments = sorted((COLLECTION_DIR / "changelogs" / "fragments").glob("*.yml"))
    assert fragments
    for fragment in fragments:
        content = yaml.safe_load(fragment.read_text())
        assert set(content) <= sections, f"{fragment.name}: unknown sections {set(content) - sections}"
    released = yaml.safe_load((COLLECTION_DIR / "changelogs" / "changelog.yaml").read_text())["releases"]
    assert GALAXY["version"] not in released, "galaxy.yml's version is released already: bump it for the fragments"


def test_the_collection_s_unit_tests_pass():
    """tests/unit of the collection, as `ansible-test units` would run them (plain pytest here,
    without this project's Django plugins)."""
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-c", "/dev/null", "-p", "no:cacheprovider", "-p", "no:django",
         str(COLLECTION_DIR / "tests" / "unit")],
        capture_output=True, text=True, timeout=120, cwd=str(COLLECTION_DIR),
        env={"PATH": f"{BIN_DIR}:/usr/bin:/bin", "PYTHONPATH": str(COLLECTIONS_PATH)},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert re.search(r"\d+ passed", completed.stdout)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("target", sorted(path.name for path in (COLLECTION_DIR / "tests" / "integration" / "targets").iterdir()))
def test_the_collection_s_integration_target_passes_against_a_live_platform(target, live_server, tokens, tmp_path):
    """Each target of tests/integration, run the way `ansible-test integration` runs a role
    target, with the live platform's URL and tokens as its integration config."""
    config = tmp_path / "integration_config.json"
    config.write_text(json.dumps({"storage_platform_url": live_server.url,
                                  "storage_platform_admin_token": tokens["admin"],
                                  "storage_platform_read_token": tokens["read"]}))
    playbook = tmp_path / "target.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": f"integration target {target}", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "roles": [{"role": str(COLLECTION_DIR / "tests" / "integration" / "targets" / target)}],
    }]))
    completed = run_ansible_tool("ansible-playbook", "-i", "localhost,", str(playbook), "-e", f"@{config}", timeout=240)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0", output), output
    for token in tokens.values():
        assert token not in output


@pytest.mark.slow  # ansible-test sanity: ~1-2 minutes
def test_ansible_test_sanity_reports_no_error():
    completed = subprocess.run(["bash", str(REPOSITORY_ROOT / "scripts" / "ansible-sanity.sh"), "run"],
                               capture_output=True, text=True, timeout=900, cwd=str(REPOSITORY_ROOT))
    output = completed.stdout + completed.stderr
    require_service("ansible-test sanity environments", completed.returncode != 3,
                    "make venv (scripts/ansible-sanity.sh prime) prepares them")
    assert completed.returncode == 0, output[-6000:]
    assert "ERROR:" not in output
    assert re.search(r'Running sanity test "validate-modules"', output)


@pytest.mark.slow  # ansible-lint: ~1 minute
def test_ansible_lint_is_clean_with_the_production_profile():
    completed = subprocess.run([str(BIN_DIR / "ansible-lint"), "--profile", "production", "--nocolor"],
                               capture_output=True, text=True, timeout=600, cwd=str(ANSIBLE_DIR),
                               env=ansible_environment())
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    assert "Passed: 0 failure(s), 0 warning(s)" in output
