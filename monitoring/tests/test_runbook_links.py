"""Every alert links to an existing runbook section and carries the required fields."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "rules" / "platform.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
TESTS = ROOT / "monitoring" / "prometheus" / "tests" / "platform_test.yml"


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


def anchors() -> set[str]:
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    known = anchors()
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        annotations = rule["annotations"]
        # The description names what the alert is about: the volume, or for replication the target.
        assert annotations["summary"] and ("$labels.volume" in annotations["description"]
                                           or "$labels.target" in annotations["description"]), rule["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/runbook.md" and anchor in known, rule["alert"]


def test_every_alert_has_a_promtool_unit_test():
    tested = set(re.findall(r"alertname: (\w+)", TESTS.read_text()))
    assert {rule["alert"] for rule in alerts()} <= tested
