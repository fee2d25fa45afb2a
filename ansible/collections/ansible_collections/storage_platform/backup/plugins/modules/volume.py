#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: volume
short_description: Create, update or delete a storage volume
description:
  - Ensures a volume with the given name exists with the given quota, labels, RPO and policy,
    or does not exist.
  - Idempotent. The current volume is read, compared with the wanted state, and only the
    differing fields are sent. Supports check mode and diff mode.
  - Deleting a volume never deletes its backups; they stay restorable into a new volume.
version_added: 1.0.0
extends_documentation_fragment:
  - storage_platform.backup.platform
  - storage_platform.backup.platform.state
options:
  name:
    description:
      - Volume name, unique on the platform (a DNS label of 1-63 lower-case letters, digits and C(-)).
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the volume, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  size_gb:
    description:
      - Quota in GiB. Required when the volume is created.
    type: int
  labels:
    description:
      - Labels (string keys and values) to set on the volume.
    type: dict
  purge_labels:
    description:
      - Remove labels not listed in O(labels). When V(false), O(labels) are merged into the existing ones.
    type: bool
    default: false
  rpo_hours:
    description:
      - Recovery point objective in whole hours for this volume, overriding its policy's.
      - Mutually exclusive with O(rpo_minutes).
    type: int
  rpo_minutes:
    description:
      - Recovery point objective in minutes (for example V(15)) for this volume, overriding its policy's.
      - Mutually exclusive with O(rpo_hours).
    type: int
  policy:
    description:
      - Backup policy (id or name) the volume follows.
    type: str
  wait:
    description:
      - Wait until a new volume is V(available), or a deleted one is gone.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for O(wait).
    type: int
    default: 300
"""

EXAMPLES = r"""
- name: A database volume with a 4-hour RPO
  storage_platform.backup.volume:
    api_url: https://backup.example.com
    api_token: "{{ vault_platform_admin_token }}"
    name: db-1
    size_gb: 50
    rpo_hours: 4
    labels:
      team: payments
      tier: gold

- name: A volume backed up every 15 minutes (its policy's schedule) with a 15-minute RPO
  storage_platform.backup.volume:
    name: orders-db
    size_gb: 20
    rpo_minutes: 15
    policy: every-15-minutes

- name: Remove a temporary volume (its backups stay)
  storage_platform.backup.volume:
    name: drill-db-1
    state: absent
"""

RETURN = r"""
volume:
  description: The volume as the API describes it after the task (empty when absent).
  returned: always
  type: dict
  sample:
    id: 3c0d5c2e-8f1e-4a51-9f83-5f2f3a0e9b7d
    name: db-1
    size_gb: 50
    status: available
    path: /var/lib/storage-platform/volumes/db-1
    used_bytes: 0
    labels: {team: payments}
    rpo_minutes: 240
    rpo_hours: 4
    policy: null
    created_at: "2026-11-27T16:00:00Z"
changed_fields:
  description: Names of the fields that were (or in check mode would be) sent to the API.
  returned: always
  type: list
  elements: str
  sample: [size_gb, labels]
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import API_PREFIX
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import build_argument_spec, run_module

MANAGED_FIELDS = ("size_gb", "labels", "rpo_hours", "rpo_minutes", "policy")


def argument_spec():
    return build_argument_spec(dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        size_gb=dict(type="int"),
        labels=dict(type="dict"),
        purge_labels=dict(type="bool", default=False),
        rpo_hours=dict(type="int"),
        rpo_minutes=dict(type="int"),
        policy=dict(type="str"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=300),
    ))


def policy_matches(volume, wanted):
    """The task may name the policy by id or by name; the API shows both (`policy` is the
    name, `policy_id` the id)."""
    current = volume.get("policy")
    if isinstance(current, dict):
        current = current.get("name")
    return wanted in (current, str(volume.get("policy_id")))


def wanted_labels(current, params):
    labels = {str(key): str(value) for key, value in (params["labels"] or {}).items()}
    if params["purge_labels"]:
        return labels
    merged = dict(current or {})
    merged.update(labels)
    return merged


def differences(current, params):
    """The fields to PATCH: only those the task names and whose value differs."""
    changes = {}
    if params["size_gb"] is not None and current.get("size_gb") != params["size_gb"]:
        changes["size_gb"] = params["size_gb"]
    if params["labels"] is not None or params["purge_labels"]:
        labels = wanted_labels(current.get("labels"), params)
        if labels != (current.get("labels") or {}):
            changes["labels"] = labels
    for field in ("rpo_hours", "rpo_minutes"):
        if params[field] is not None and current.get(field) != params[field]:
            changes[field] = params[field]
    if params["policy"] is not None and not policy_matches(current, params["policy"]):
        changes["policy"] = params["policy"]
    return changes


def diff_view(volume):
    if not volume:
        return {}
    view = {field: volume.get(field) for field in MANAGED_FIELDS}
    view["name"] = volume.get("name")
    return view


def ensure_present(module, client, current):
    params = module.params
    if current is None:
        if params["size_gb"] is None:
            return {"changed": False, "volume": {}, "changed_fields": [],
                    "failed_msg": "size_gb is required to create volume %s" % params["name"]}
        body = {"name": params["name"], "size_gb": params["size_gb"]}
        if params["labels"] is not None:
            body["labels"] = wanted_labels({}, params)
        for field in ("rpo_hours", "rpo_minutes", "policy"):
            if params[field] is not None:
                body[field] = params[field]
        result = {"changed": True, "changed_fields": sorted(body),
                  "diff": {"before": {}, "after": diff_view(body)}}
        if module.check_mode:
            result["volume"] = body
            return result
        volume = client.post("%s/volumes" % API_PREFIX, body)
        if params["wait"] and volume.get("status") == "creating":
            volume = client.wait_for_volume_status(volume["id"], ("available",), timeout=params["wait_timeout"])
        result["volume"] = volume
        if volume and volume.get("status") == "error":
            result["failed_msg"] = "volume %s ended in status error" % params["name"]
        return result

    changes = differences(current, params)
    after = dict(current)
    after.update(changes)
    result = {"changed": bool(changes), "changed_fields": sorted(changes), "volume": current,
              "diff": {"before": diff_view(current), "after": diff_view(after)}}
    if changes and not module.check_mode:
        result["volume"] = client.patch("%s/volumes/%s" % (API_PREFIX, current["id"]), changes)
    elif changes:
        result["volume"] = after
    return result


def ensure_absent(module, client, current):
    params = module.params
    if current is None:
        return {"changed": False, "volume": {}, "changed_fields": []}
    result = {"changed": True, "volume": {}, "changed_fields": [],
              "diff": {"before": diff_view(current), "after": {}}}
    if module.check_mode:
        return result
    deleted = client.delete("%s/volumes/%s" % (API_PREFIX, current["id"]))[0]
    if not deleted:
        # Someone else deleted it between our read and our delete: the goal holds.
        result["changed"] = False
        return result
    if params["wait"]:
        remaining = client.wait_for_volume_status(current["id"], (), timeout=params["wait_timeout"])
        if remaining is not None:
            result["volume"] = remaining
            result["failed_msg"] = "volume %s could not be deleted (status %s)" % (
                params["name"], remaining.get("status"))
    return result


def handle(module, client):
    current = client.find_volume(module.params["name"])
    if module.params["state"] == "absent":
        return ensure_absent(module, client, current)
    return ensure_present(module, client, current)


def main():
    run_module(argument_spec(), handle, mutually_exclusive=[("rpo_hours", "rpo_minutes")])


if __name__ == "__main__":
    main()
