#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: restore
short_description: Restore a backup into a new volume or in place
description:
  - Starts a restore job (C(POST /api/v1/backups/{id}/restore)) and waits for it.
  - With O(new_volume_name) the snapshot is written into a new volume; if a volume with that
    name already exists the task changes nothing (so a re-run does not restore twice) unless
    O(force) is set, which then fails rather than overwrite another volume.
  - With O(in_place) the backup's own volume is overwritten with the snapshot; this always
    reports a change.
version_added: 1.0.0
extends_documentation_fragment:
  - storage_platform.backup.platform
  - storage_platform.backup.platform.wait
options:
  backup:
    description:
      - Id of the backup to restore.
    type: str
  volume:
    description:
      - Restore the newest completed backup of this volume (name or id) instead of O(backup).
    type: str
  new_volume_name:
    description:
      - Name of a new volume to restore into. Mutually exclusive with O(in_place).
    type: str
  in_place:
    description:
      - Restore into the backup's own volume, replacing its content.
    type: bool
    default: false
  size_gb:
    description:
      - Quota in GiB of the new volume (with O(new_volume_name)); by default the platform
        uses the source volume's quota.
    type: int
  force:
    description:
      - With O(new_volume_name), fail when that volume already exists instead of reporting no change.
    type: bool
    default: false
attributes:
  check_mode:
    description: Nothing is started; the task reports whether a restore would run.
    support: full
  diff_mode:
    description: No diff is returned.
    support: none
"""

EXAMPLES = r"""
- name: Restore the newest backup of db-1 into a scratch volume
  storage_platform.backup.restore:
    volume: db-1
    new_volume_name: db-1-restored
    wait_timeout: 3600
"""

RETURN = r"""
job:
  description: The restore job (its final state when O(wait)).
  returned: when a restore was started
  type: dict
volume:
  description: The volume the data was restored into, as the API describes it after the task.
  returned: always
  type: dict
backup_id:
  description: The backup that was restored.
  returned: always
  type: str
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import API_PREFIX, PlatformApiError
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import build_argument_spec, run_module, wait_for_jobs
from ansible_collections.storage_platform.backup.plugins.module_utils.catalog import resolve_backup_id


def argument_spec():
    return build_argument_spec(dict(
        backup=dict(type="str"),
        volume=dict(type="str"),
        new_volume_name=dict(type="str"),
        in_place=dict(type="bool", default=False),
        size_gb=dict(type="int"),
        force=dict(type="bool", default=False),
    ), wait=True)


def handle(module, client):
    params = module.params
    if bool(params["new_volume_name"]) == bool(params["in_place"]):
        return {"changed": False, "volume": {}, "backup_id": None,
                "failed_msg": "give exactly one of new_volume_name or in_place=true"}
    if params["size_gb"] is not None and not params["new_volume_name"]:
        return {"changed": False, "volume": {}, "backup_id": None,
                "failed_msg": "size_gb applies only with new_volume_name"}
    backup_id = resolve_backup_id(client, params)
    backup = client.get("%s/backups/%s" % (API_PREFIX, backup_id))
    if backup is None:
        raise PlatformApiError("backup %s does not exist" % backup_id, status=404, code="backup_not_found")
    target_name = params["new_volume_name"] or backup.get("volume_name")
    if params["new_volume_name"]:
        existing = client.find_volume(params["new_volume_name"])
        if existing is not None:
            if params["force"]:
                return {"changed": False, "volume": existing, "backup_id": backup_id,
                        "failed_msg": "volume %s already exists" % params["new_volume_name"]}
            return {"changed": False, "volume": existing, "backup_id": backup_id}
    if module.check_mode:
        return {"changed": True, "volume": {"name": target_name}, "backup_id": backup_id}
    body = {}
    if params["new_volume_name"]:
        body["new_volume_name"] = params["new_volume_name"]
        if params["size_gb"] is not None:
            body["size_gb"] = params["size_gb"]
    job = client.post("%s/backups/%s/restore" % (API_PREFIX, backup_id), body)
    result = {"changed": True, "job": job, "backup_id": backup_id}
    if params["wait"]:
        jobs, failures = wait_for_jobs(client, [job], params)
        result["job"] = jobs[0]
        if failures:
            result["failed_msg"] = "restore of backup %s did not succeed: %s" % (backup_id, failures[0])
    result["volume"] = client.find_volume(target_name) or {}
    return result


def main():
    run_module(argument_spec(), handle, mutually_exclusive=[("backup", "volume")],
               required_one_of=[("backup", "volume")])


if __name__ == "__main__":
    main()
