#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: health
short_description: Check the platform's liveness (/health) and readiness (/ready)
description:
  - Reads C(/health) (the process answers) and C(/ready) (database, broker and storage are
    reachable), and C(/version) when the platform serves it.
  - With O(require_ready) the task fails when the platform is not ready, naming the failing parts.
  - With O(wait_timeout) the checks are repeated until they pass or the time is up (for
    example after restarting the API during an upgrade).
version_added: 1.0.0
author:
  - Storage & Backup Platform team
extends_documentation_fragment:
  - storage_platform.backup.platform
options:
  require_ready:
    description:
      - Fail the task unless C(/ready) answers 200. When V(false), only C(/health) must answer 200.
    type: bool
    default: true
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
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Wait up to two minutes for a restarted API to become ready
  storage_platform.backup.health:
    api_url: "http://{{ inventory_hostname }}:8000"
    api_token: "{{ vault_platform_read_token }}"
    wait_timeout: 120
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
version:
  description: The body of C(/version); empty when the platform does not serve it.
  returned: always
  type: dict
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import PlatformApiError
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import (
    build_argument_spec,
    run_module,
)


def argument_spec():
    return build_argument_spec(dict(
        require_ready=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=0),
        poll_interval=dict(type="float", default=2.0),
    ))


def probe(client, path):
    """``(ok, body)`` for one probe; an error answer is a result here, not an exception."""
    try:
        response = client.request("GET", path, retry=False)
        return 200 <= response.status < 300, response.data if isinstance(response.data, dict) else {}
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


def check(client):
    healthy, health = probe(client, "/health")
    ready, readiness = probe(client, "/ready") if healthy else (False, {"message": "/health failed"})
    return {"changed": False, "healthy": healthy, "ready": ready, "health": health, "readiness": readiness}


def handle(module, client):
    params = module.params
    deadline = client.monotonic() + params["wait_timeout"]
    while True:
        result = check(client)
        passed = result["ready"] if params["require_ready"] else result["healthy"]
        if passed or client.monotonic() >= deadline:
            break
        client.pause(params["poll_interval"])
    version_ok, version = probe(client, "/version") if result["healthy"] else (False, {})
    result["version"] = version if version_ok else {}
    if not passed:
        failing = result["readiness"] if result["healthy"] else result["health"]
        result["failed_msg"] = "platform at %s is not %s: %s" % (
            params["api_url"], "ready" if result["healthy"] else "healthy", failure_summary(failing))
    return result


def main():
    run_module(argument_spec(), handle)


if __name__ == "__main__":
    main()
