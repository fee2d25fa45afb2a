#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: job_info
short_description: Read a job (optionally waiting for it), or list jobs
description:
  - Reads C(/api/v1/jobs/{id}). With O(wait), polls until the job is V(succeeded), V(failed)
    or V(cancelled); a job that does not succeed then fails the task.
  - Without O(id), lists jobs filtered by O(status) and O(kind), for example to see that no
    job is still running before an upgrade.
version_added: 1.0.0
extends_documentation_fragment:
  - storage_platform.backup.platform
  - storage_platform.backup.platform.info
options:
  id:
    description:
      - Id of the job. Without it, jobs are listed.
    type: str
  status:
    description:
      - When listing, only jobs in one of these states.
    type: list
    elements: str
  kind:
    description:
      - When listing, only jobs of this kind.
    type: str
    choices: [backup, restore, verify, prune, drill]
  wait:
    description:
      - Wait until the job reaches a terminal state; fail the task unless it V(succeeded).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait when O(wait).
    type: int
    default: 600
  poll_interval:
    description:
      - Longest pause in seconds between two polls.
    type: float
    default: 2.0
"""

EXAMPLES = r"""
- name: Jobs still queued or running
  storage_platform.backup.job_info:
    status: [queued, running]
  register: active

- name: Wait for a prune started with ansible.builtin.uri
  storage_platform.backup.job_info:
    id: "{{ prune.json.id }}"
    wait: true
    wait_timeout: 7200
"""

RETURN = r"""
jobs:
  description: The listed jobs (without O(id)), newest first.
  returned: when O(id) is not given
  type: list
  elements: dict
job:
  description: The job (its final state when O(wait)); empty when it does not exist.
  returned: when O(id) is given
  type: dict
  sample:
    id: 6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a
    kind: backup
    status: succeeded
    progress: {done: 1048576, total: 1048576}
    error: ""
    created_at: "2026-11-27T16:00:00Z"
    finished_at: "2026-11-27T16:00:09Z"
exists:
  description: Whether the job exists.
  returned: when O(id) is given
  type: bool
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import API_PREFIX
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import build_argument_spec, run_module, wait_for_jobs


def argument_spec():
    return build_argument_spec(dict(
        id=dict(type="str"),
        status=dict(type="list", elements="str"),
        kind=dict(type="str", choices=["backup", "restore", "verify", "prune", "drill"]),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600),
        poll_interval=dict(type="float", default=2.0),
    ))


def list_jobs(client, params):
    jobs = []
    for status in params["status"] or [None]:
        jobs.extend(client.list("%s/jobs" % API_PREFIX, {"status": status, "kind": params["kind"]}))
    return {"changed": False, "jobs": jobs}


def handle(module, client):
    params = module.params
    if not params["id"]:
        return list_jobs(client, params)
    job = client.get_job(params["id"])
    if job is None:
        return {"changed": False, "job": {}, "exists": False}
    result = {"changed": False, "job": job, "exists": True}
    if params["wait"]:
        jobs, failures = wait_for_jobs(client, [{"job": params["id"]}], params)
        result["job"] = jobs[0]
        if failures:
            result["failed_msg"] = failures[0]
    return result


def main():
    run_module(argument_spec(), handle)


if __name__ == "__main__":
    main()
