#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_info
short_description: List backups, or read one
description:
  - Reads one backup by O(id), or lists backups filtered by O(volume) and O(status), newest first.
  - Backups outlive their volume; O(volume) also accepts the id of a deleted volume.
version_added: 1.0.0
extends_documentation_fragment:
  - storage_platform.backup.platform
  - storage_platform.backup.platform.info
options:
  id:
    description:
      - Id of one backup.
    type: str
  volume:
    description:
      - Name or id of the volume whose backups to list.
    type: str
  status:
    description:
      - Only backups with this status.
    type: str
    choices: [queued, running, completed, failed, cancelled]
  latest:
    description:
      - Return only the newest matching backup (as RV(backup)).
    type: bool
    default: false
  limit:
    description:
      - Return at most this many backups.
    type: int
"""

EXAMPLES = r"""
- name: The newest completed backup of db-1
  storage_platform.backup.backup_info:
    volume: db-1
    status: completed
    latest: true
  register: newest
"""

RETURN = r"""
backups:
  description: The matching backups, newest first.
  returned: always
  type: list
  elements: dict
backup:
  description: The backup named by O(id), or the newest one with O(latest); empty if none.
  returned: when O(id) or O(latest) is given
  type: dict
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import API_PREFIX, looks_like_uuid
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import build_argument_spec, run_module


def argument_spec():
    return build_argument_spec(dict(
        id=dict(type="str"),
        volume=dict(type="str"),
        status=dict(type="str", choices=["queued", "running", "completed", "failed", "cancelled"]),
        latest=dict(type="bool", default=False),
        limit=dict(type="int"),
    ))


def handle(module, client):
    params = module.params
    if params["id"]:
        backup = client.get("%s/backups/%s" % (API_PREFIX, params["id"]))
        return {"changed": False, "backups": [backup] if backup else [], "backup": backup or {}}
    query = {"status": params["status"]}
    if params["volume"]:
        volume = client.find_volume(params["volume"])
        if volume is not None:
            query["volume"] = volume["id"]
        elif looks_like_uuid(params["volume"]):
            query["volume"] = params["volume"]  # a deleted volume's backups
        else:
            return {"changed": False, "backups": [], "backup": {} if params["latest"] else None}
    limit = 1 if params["latest"] else params["limit"]
    backups = client.list("%s/backups" % API_PREFIX, query, limit=limit)
    result = {"changed": False, "backups": backups}
    if params["latest"]:
        result["backup"] = backups[0] if backups else {}
    return result


def main():
    run_module(argument_spec(), handle, mutually_exclusive=[("id", "volume")])


if __name__ == "__main__":
    main()
