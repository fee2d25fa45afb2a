#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: volume_info
short_description: List volumes, with their RPO status and content checksums on request
description:
  - Lists volumes, or the one named by O(name), filtered by O(labels).
  - With O(rpo_status) each volume gets C(rpo), judged as the platform judges it for its
    C(backup_rpo_violation) metric - a volume violates its RPO when its newest completed
    backup, or its creation if it was never backed up, is older than its RPO (C(rpo_minutes),
    compared to the second). A volume created a minute ago is not in violation.
  - With O(checksums) each volume gets C(checksums), a map of relative path to digest
    (C(sha256:...) for files, C(symlink:<target>), C(dir)), to compare two volumes, for example
    a restore drill's copy with its source. This reads every byte, so use it on small volumes.
version_added: 1.0.0
extends_documentation_fragment:
  - storage_platform.backup.platform
  - storage_platform.backup.platform.info
options:
  name:
    description:
      - Name or id of one volume.
    type: str
  labels:
    description:
      - Only volumes carrying all of these labels with these values.
    type: dict
  rpo_status:
    description:
      - Add C(rpo) (newest completed backup, the age the RPO is judged by and what it counts
        from, the RPO, whether it is violated) to each volume.
    type: bool
    default: false
  checksums:
    description:
      - Add C(checksums) of each volume's files.
    type: bool
    default: false
  checksum_source:
    description:
      - V(api) reads the files through the API's file data plane (works from anywhere);
        V(path) reads the volume's host C(path) on the host running the task (delegate to the
        volume's node), which is faster for large volumes.
    type: str
    choices: [api, path]
    default: api
"""

EXAMPLES = r"""
- name: Volumes violating their RPO
  storage_platform.backup.volume_info:
    rpo_status: true
  register: inventory

- ansible.builtin.assert:
    that: inventory.volumes | selectattr('rpo.violation') | list | length == 0

- name: Temporary volumes
  storage_platform.backup.volume_info:
    labels: {temporary: "true"}
"""

RETURN = r"""
volumes:
  description: The matching volumes as the API describes them, plus C(rpo) and C(checksums) when asked.
  returned: always
  type: list
  elements: dict
  sample:
    - id: 3c0d5c2e-8f1e-4a51-9f83-5f2f3a0e9b7d
      name: db-1
      size_gb: 50
      status: available
      labels: {tier: gold}
      rpo_minutes: 240
      rpo_hours: 4
      rpo: {last_backup_id: 9b1f7c9e-1d7e-4a0e-b2a4-1f5c2f0f7a11, last_backup_at: "2026-11-27T16:00:09Z",
            reference: last_backup, age_hours: 0.5, age_minutes: 30.0, rpo_hours: 4, rpo_minutes: 240,
            violation: false}
in_violation:
  description: Names of the volumes violating their RPO (with O(rpo_status)).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import API_PREFIX
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import build_argument_spec, run_module
from ansible_collections.storage_platform.backup.plugins.module_utils.catalog import checksums_from_api, checksums_from_path, newest_backup_of, rpo_status


def argument_spec():
    return build_argument_spec(dict(
        name=dict(type="str"),
        labels=dict(type="dict"),
        rpo_status=dict(type="bool", default=False),
        checksums=dict(type="bool", default=False),
        checksum_source=dict(type="str", choices=["api", "path"], default="api"),
    ))


def has_labels(volume, wanted):
    current = volume.get("labels") or {}
    return all(key in current and str(current[key]) == str(value) for key, value in wanted.items())


def handle(module, client):
    params = module.params
    if params["name"]:
        found = client.find_volume(params["name"])
        volumes = [found] if found else []
    else:
        volumes = client.list("%s/volumes" % API_PREFIX)
    # Labels are matched here rather than with the API's label filter so that several labels
    # combine with AND, whatever query syntax the server-side filter uses.
    if params["labels"]:
        volumes = [volume for volume in volumes if has_labels(volume, params["labels"])]
    in_violation = []
    for volume in volumes:
        if params["rpo_status"]:
            volume["rpo"] = rpo_status(volume, newest_backup_of(client, volume))
            if volume["rpo"]["violation"]:
                in_violation.append(volume["name"])
        if params["checksums"]:
            if params["checksum_source"] == "path":
                volume["checksums"] = checksums_from_path(volume["path"])
            else:
                volume["checksums"] = checksums_from_api(client, volume["id"])
    return {"changed": False, "volumes": volumes, "in_violation": in_violation}


def main():
    run_module(argument_spec(), handle)


if __name__ == "__main__":
    main()
