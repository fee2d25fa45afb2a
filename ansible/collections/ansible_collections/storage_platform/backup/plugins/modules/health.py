#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: health
short_description: Check the platform's liveness, readiness, components, version and metrics
description:
  - Reads C(/health) (the process answers), C(/ready) (database, broker and storage are
    reachable, plus the C(components) doing the background work) and C(/version).
  - Fails naming every problem found, one sentence each (also returned in RV(problems)).
    What counts as a problem is chosen with O(require_ready), O(require_components),
    O(expected_version) and O(required_metrics); C(/health) failing always is one.
  - With O(wait_timeout) the checks are repeated until they pass or the time is up (for
    example after restarting the API during an upgrade).
version_added: 1.0.0
extends_documentation_fragment:
  - storage_platform.backup.platform
  - storage_platform.backup.platform.info
options:
  require_ready:
    description:
      - C(/ready) must answer 200. When V(false), only C(/health) must answer 200.
    type: bool
    default: true
  require_components:
    description:
      - Components of C(/ready) that must be healthy. V(workers) fails when no worker sent a
        heartbeat recently or one went silent without stopping; V(beat) when the scheduler's
        last tick is old, it stopped or it never ran; V(verify) when a policy's scheduled
        verify run has no verify job since, or the newest verify found damage.
    type: list
    elements: str
    choices: [workers, beat, verify]
    default: []
    version_added: 2.0.0
  expected_version:
    description:
      - The version the platform must run, either its release (C(version) of C(/version)) or
        its git revision (at least 7 leading hex digits of C(git_revision)).
    type: str
    version_added: 2.0.0
  required_metrics:
    description:
      - Metric names that C(/metrics) must expose (a counter may be named with or without C(_total)).
    type: list
    elements: str
    default: []
    version_added: 2.0.0
  metrics_token:
    description:
      - Bearer token for C(/metrics) when the platform sets C(METRICS_TOKEN); by default the API token is sent.
    type: str
    version_added: 2.0.0
  wait_timeout:
    description:
      - Seconds to keep retrying until the checks pass; V(0) checks once.
    type: int
    default: 0
  poll_interval:
    description:
      - Seconds between two attempts when O(wait_timeout) is set.
    type: float
    default: 2.0
"""

EXAMPLES = r"""
- name: Wait up to two minutes for a restarted API to become ready
  storage_platform.backup.health:
    api_url: "http://{{ inventory_hostname }}:8000"
    api_token: "{{ vault_platform_read_token }}"
    wait_timeout: 120

- name: Everything an operator would look at
  storage_platform.backup.health:
    require_components: [workers, beat, verify]
    expected_version: 1.4.0
    required_metrics: [storage_volume_count, backup_rpo_violation]
"""

RETURN = r"""
healthy:
  description: Whether C(/health) answered 200.
  returned: always
  type: bool
ready:
  description: Whether C(/ready) answered 200.
  returned: always
  type: bool
health:
  description: The body of C(/health).
  returned: always
  type: dict
readiness:
  description: The body of C(/ready) (C(status), C(failing) and C(checks) per dependency, also on 503).
  returned: always
  type: dict
components:
  description: The C(components) of C(/ready) (C(workers), C(beat), C(verify)), each with its C(status); empty when not served.
  returned: always
  type: dict
version:
  description: The body of C(/version); empty when the platform does not serve it.
  returned: always
  type: dict
metrics_missing:
  description: The names of O(required_metrics) that C(/metrics) does not expose.
  returned: always
  type: list
  elements: str
problems:
  description: One sentence per problem found; empty when every check passed.
  returned: always
  type: list
  elements: str
  sample: ["beat: beat's last tick is 300 s old", "version: running 1.0.0 (revision 3f2a9c1), expected 1.1.0"]
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import PlatformApiError
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import build_argument_spec, run_module

COMPONENTS = ["workers", "beat", "verify"]
# Component states that need no action ("unscheduled": no policy asks for verifies).
HEALTHY_STATES = ("ok", "unscheduled")


def argument_spec():
    return build_argument_spec(dict(
        require_ready=dict(type="bool", default=True),
        require_components=dict(type="list", elements="str", choices=COMPONENTS, default=[]),
        expected_version=dict(type="str"),
        required_metrics=dict(type="list", elements="str", default=[]),
        metrics_token=dict(type="str", no_log=True),
        wait_timeout=dict(type="int", default=0),
        poll_interval=dict(type="float", default=2.0),
    ))


def probe(client, path, **options):
    """``(ok, body)`` for one probe; an error answer is a result here, not an exception."""
    try:
        response = client.request("GET", path, retry=False, **options)
        return 200 <= response.status < 300, response.data if isinstance(response.data, (dict, bytes)) else {}
    except PlatformApiError as error:
        if error.status is not None and "checks" in error.detail:
            return False, error.detail  # /ready's own report: which dependency fails and why
        body = {"code": error.code, "message": error.message, "detail": error.detail}
        if error.status is None:
            body["status"] = "unreachable"
        return False, body


def failure_summary(body):
    """One line naming what failed: the failing dependencies of /ready, else the error message."""
    if body.get("failing"):
        checks = body.get("checks") or {}
        return "failing " + ", ".join(
            "%s (%s)" % (name, (checks.get(name) or {}).get("error") or "failing") for name in body["failing"])
    return body.get("message") or str(body)


def component_problems(components, required):
    problems = []
    for name in required:
        state = components.get(name)
        if not isinstance(state, dict):
            reason = components.get("error") or "/ready does not report it (a platform older than 2.0 of this collection?)"
            problems.append("%s: unknown, %s" % (name, reason))
            continue
        if state.get("status") in HEALTHY_STATES:
            continue
        if name == "workers":
            silent = ", ".join("%s (silent for %s s)" % (entry.get("worker"), entry.get("age_seconds"))
                               for entry in state.get("silent") or [])
            if not state.get("alive"):
                reason = "no worker sent a heartbeat in the last %s s" % state.get("stale_after_seconds")
                reason += "; silent: " + silent if silent else ""
            else:
                reason = "workers went silent without stopping: " + silent
        else:
            reason = state.get("reason") or "status %s" % state.get("status")
        problems.append("%s: %s" % (name, reason))
    return problems


def version_matches(version, expected):
    expected = str(expected).strip()
    if expected == str(version.get("version") or ""):
        return True
    revision = str(version.get("git_revision") or "")
    return len(expected) >= 7 and revision.lower().startswith(expected.lower())


def exposed_metric_names(text):
    """Family and sample names in a Prometheus text exposition (counters also with ``_total``)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                names.add(parts[2])
                if parts[3] == "counter":
                    names.add(parts[2] + "_total")
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def missing_metrics(client, required, metrics_token):
    if not required:
        return [], None
    headers = {"Authorization": "Bearer " + metrics_token} if metrics_token else None
    ok, body = probe(client, "/metrics", raw=True, headers=headers)
    if not ok:
        return list(required), "/metrics is not readable: %s" % failure_summary(body)
    names = exposed_metric_names(body.decode("utf-8", "replace"))
    return [name for name in required if name not in names], None


def check(client, params):
    healthy, health = probe(client, "/health")
    ready, readiness = probe(client, "/ready") if healthy else (False, {"message": "/health failed"})
    version_ok, version = probe(client, "/version") if healthy else (False, {})
    result = {"healthy": healthy, "ready": ready, "health": health, "readiness": readiness,
              "components": readiness.get("components") or {}, "version": version if version_ok else {},
              "metrics_missing": []}
    problems = []
    if not healthy:
        problems.append("/health: %s" % failure_summary(health))
    else:
        if params["require_ready"] and not ready:
            problems.append("/ready: %s" % failure_summary(readiness))
        problems.extend(component_problems(result["components"], params["require_components"]))
        if params["expected_version"] and not version_matches(result["version"], params["expected_version"]):
            problems.append("version: running %s (revision %s), expected %s" % (
                result["version"].get("version", "unknown"), result["version"].get("git_revision") or "unknown",
                params["expected_version"]))
        missing, unreadable = missing_metrics(client, params["required_metrics"], params["metrics_token"])
        result["metrics_missing"] = missing
        if unreadable:
            problems.append("metrics: " + unreadable)
        elif missing:
            problems.append("metrics: /metrics lacks " + ", ".join(missing))
    result["problems"] = problems
    return result


def handle(module, client):
    params = module.params
    deadline = client.monotonic() + params["wait_timeout"]
    while True:
        result = check(client, params)
        if not result["problems"] or client.monotonic() >= deadline:
            break
        client.pause(params["poll_interval"])
    result["changed"] = False
    if result["problems"]:
        result["failed_msg"] = "platform at %s: %s" % (params["api_url"], "; ".join(result["problems"]))
    return result


def main():
    run_module(argument_spec(), handle)


if __name__ == "__main__":
    main()
