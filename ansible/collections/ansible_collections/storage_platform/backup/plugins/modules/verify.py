#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: verify
short_description: Verify the backup repository, recorded against a backup or not
description:
  - Starts a verify job and waits for it. The platform's verification covers the whole
    repository the backup lives in (every snapshot, so the newest backup of every volume), so
    one task is enough for all volumes.
  - With O(backup) or O(volume) the job is recorded against that backup
    (C(POST /api/v1/backups/{id}/verify)); with neither, against the repository
    (C(POST /api/v1/verify)).
  - The structure is always checked; O(read_data_percent) also reads and authenticates that
    share of the data. Damage fails the job, and the task, with the affected packs and
    snapshots in RV(job).
  - Reports C(changed=false), because verifying reads the repository and changes no data.
  - In check mode nothing is started.
version_added: 1.0.0
extends_documentation_fragment:
  - storage_platform.backup.platform
  - storage_platform.backup.platform.wait
options:
  backup:
    description:
      - Id of the backup to record the verify against.
    type: str
  volume:
    description:
      - Verify the newest completed backup of this volume (name or id) instead of O(backup).
    type: str
  read_data_percent:
    description:
      - Percentage (0-100) of the data to read and authenticate besides the structure check.
    type: int
attributes:
  check_mode:
    description: Nothing is started; the task reports which backup the verify would be recorded against.
    support: full
  diff_mode:
    description: No diff is returned.
    support: none
"""

EXAMPLES = r"""
- name: Verify the newest backup of db-1, reading a tenth of the data
  storage_platform.backup.verify:
    volume: db-1
    read_data_percent: 10

- name: Verify the whole repository
  storage_platform.backup.verify:
    wait_timeout: 7200
"""

RETURN = r"""
job:
  description: The verify job (its final state when O(wait)).
  returned: unless check mode
  type: dict
backup_id:
  description: The backup the job is recorded against (null for a repository-wide verify).
  returned: always
  type: str
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import API_PREFIX
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import build_argument_spec, run_module, wait_for_jobs
from ansible_collections.storage_platform.backup.plugins.module_utils.catalog import resolve_backup_id


def argument_spec():
    return build_argument_spec(dict(
        backup=dict(type="str"),
        volume=dict(type="str"),
        read_data_percent=dict(type="int"),
    ), wait=True)


def handle(module, client):
    params = module.params
    if params["read_data_percent"] is not None and not 0 <= params["read_data_percent"] <= 100:
        return {"changed": False, "backup_id": None, "failed_msg": "read_data_percent must be between 0 and 100"}
    backup_id = resolve_backup_id(client, params) if params["backup"] or params["volume"] else None
    if module.check_mode:
        return {"changed": False, "backup_id": backup_id}
    body = {}
    if params["read_data_percent"] is not None:
        body["read_data_percent"] = params["read_data_percent"]
    if backup_id:
        job = client.post("%s/backups/%s/verify" % (API_PREFIX, backup_id), body)
    else:
        job = client.post("%s/verify" % API_PREFIX, body)
    result = {"changed": False, "backup_id": backup_id, "job": job}
    if params["wait"]:
        jobs, failures = wait_for_jobs(client, [job], params)
        result["job"] = jobs[0]
        if failures:
            result["failed_msg"] = "verify of %s did not succeed: %s" % (
                "backup %s" % backup_id if backup_id else "the repository", failures[0])
    return result


def main():
    run_module(argument_spec(), handle, mutually_exclusive=[("backup", "volume")])


if __name__ == "__main__":
    main()
