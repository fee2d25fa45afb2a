# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the health module turns /ready components, /version and /metrics into problems."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.storage_platform.backup.plugins.modules.health import (
    component_problems,
    exposed_metric_names,
    version_matches,
)


def test_healthy_and_unscheduled_components_are_no_problem():
    components = {"workers": {"status": "ok", "alive": 2}, "beat": {"status": "ok"}, "verify": {"status": "unscheduled"}}
    assert component_problems(components, ["workers", "beat", "verify"]) == []


def test_each_failing_component_is_named_with_its_reason():
    components = {
        "workers": {"status": "failing", "alive": 0, "stale_after_seconds": 120,
                    "silent": [{"worker": "worker@node-1", "age_seconds": 600.0}]},
        "beat": {"status": "failing", "reason": "beat's last tick is 300 s old"},
        "verify": {"status": "failing", "reason": "no verify since the scheduled run of policy default at 2026-03-01T03:00:00Z"},
    }
    assert component_problems(components, ["workers", "beat", "verify"]) == [
        "workers: no worker sent a heartbeat in the last 120 s; silent: worker@node-1 (silent for 600.0 s)",
        "beat: beat's last tick is 300 s old",
        "verify: no verify since the scheduled run of policy default at 2026-03-01T03:00:00Z",
    ]
    assert component_problems(components, []) == []


def test_a_silent_worker_next_to_live_ones_is_named():
    components = {"workers": {"status": "degraded", "alive": 1, "silent": [{"worker": "worker@b", "age_seconds": 900}]}}
    assert component_problems(components, ["workers"]) == ["workers: workers went silent without stopping: worker@b (silent for 900 s)"]


def test_components_a_platform_does_not_report_are_problems():
    assert component_problems({}, ["beat"])[0].startswith("beat: unknown")
    assert component_problems({"error": "the database is unreachable"}, ["workers"]) == [
        "workers: unknown, the database is unreachable"]


def test_the_version_matches_the_release_or_a_revision_prefix():
    version = {"version": "1.4.0", "git_revision": "3f2a9c1d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b"}
    assert version_matches(version, "1.4.0")
    assert version_matches(version, "3f2a9c1")
    assert version_matches(version, "3F2A9C1D8E7F6A5B4C3D2E1F0A9B8C7D6E5F4A3B")
    assert not version_matches(version, "3f2a9c")  # too short to name a revision
    assert not version_matches(version, "1.5.0")
    assert not version_matches({}, "1.4.0")


def test_metric_names_include_families_samples_and_counter_totals():
    text = "\n".join([
        "# HELP backup_operations Finished backups.",
        "# TYPE backup_operations counter",
        'backup_operations_total{result="success"} 3.0',
        "# TYPE backup_rpo_violation gauge",
        "# TYPE storage_volume_count gauge",
        "storage_volume_count 2.0",
    ])
    names = exposed_metric_names(text)
    assert {"backup_operations", "backup_operations_total", "backup_rpo_violation", "storage_volume_count"} <= names
