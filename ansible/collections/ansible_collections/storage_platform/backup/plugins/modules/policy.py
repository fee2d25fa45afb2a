#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: policy
short_description: Create, update or delete a backup policy
description:
  - Ensures a backup policy (schedule, time zone, retention, RPO, verify and prune schedules)
    exists with the given settings, or does not exist.
  - Idempotent, with check mode and diff mode. Only the options the task names are compared
    and sent; cron macros such as C(@daily) compare equal to the expression the platform stores.
  - The platform refuses to delete the default policy or a policy volumes still follow; the
    task then fails with the platform's message.
version_added: 1.0.0
extends_documentation_fragment:
  - storage_platform.backup.platform
  - storage_platform.backup.platform.state
options:
  name:
    description:
      - Policy name, unique on the platform.
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the policy, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  description:
    description:
      - Free text shown to operators.
    type: str
  enabled:
    description:
      - Whether the schedules of the policy run.
    type: bool
  schedule:
    description:
      - Backup schedule, cron with five fields (minute hour day month weekday) in O(timezone).
    type: str
  timezone:
    description:
      - IANA time zone of the schedules, for example C(Europe/Berlin).
    type: str
  retention:
    description:
      - Retention rules, any of C(keep_last), C(keep_hourly), C(keep_daily), C(keep_weekly),
        C(keep_monthly), C(keep_yearly) (counts) and C(keep_within) (a duration such as C(30d)).
    type: dict
  rpo_hours:
    description:
      - Recovery point objective in whole hours of the volumes following the policy.
      - Mutually exclusive with O(rpo_minutes).
    type: int
  rpo_minutes:
    description:
      - Recovery point objective in minutes (for example V(15)) of the volumes following the policy.
      - Mutually exclusive with O(rpo_hours).
    type: int
  verify_schedule:
    description:
      - Cron schedule of verify jobs; empty for never.
    type: str
  verify_percent:
    description:
      - Percentage of the data each scheduled verify reads and authenticates.
    type: int
  prune_schedule:
    description:
      - Cron schedule of prune (retention) jobs; empty for never.
    type: str
  keep_good:
    description:
      - Prune never forgets the newest this-many good snapshots of a volume (verified or restored intact
        since they were made), whatever O(retention) says; V(0) turns this off.
    type: int
  drill_schedule:
    description:
      - Cron schedule of restore drills (each run restores the newest backup of one volume of the policy,
        chosen at random, into a scratch folder and checks every file); empty for never.
    type: str
  replication_target:
    description:
      - Name of a replication target the operator configured on the platform (E(REPLICATION_TARGETS));
        replicate jobs copy the policy's backups there. Empty for none. An unknown name fails.
    type: str
  replication_schedule:
    description:
      - Cron schedule of replicate jobs; empty for replication only on request. Naming a target without
        a schedule on a policy that has none sets an hourly one.
    type: str
  lock_mode:
    description:
      - S3 Object Lock mode of every backup of the policy's volumes; V(none) for no lock.
      - Locked backups cannot be deleted before O(lock_days) have passed, not through the API
        and not with the bucket's credentials; with V(compliance) not by anyone at all.
      - The platform refuses a lock unless the backups storage is an S3 bucket created with
        Object Lock enabled.
      - Give it together with O(lock_days).
    type: str
    choices: [none, governance, compliance]
  lock_days:
    description:
      - Days each backup stays locked; V(0) with O(lock_mode=none).
    type: int
"""

EXAMPLES = r"""
- name: Hourly backups kept two days, dailies for a month
  storage_platform.backup.policy:
    api_url: https://backup.example.com
    api_token: "{{ vault_platform_admin_token }}"
    name: databases
    schedule: "15 * * * *"
    timezone: Europe/Berlin
    rpo_hours: 2
    retention: {keep_hourly: 48, keep_daily: 31}
    verify_schedule: "0 4 * * 0"
    verify_percent: 10
    keep_good: 3
    drill_schedule: "0 5 * * 3"
    replication_target: offsite
    replication_schedule: "30 * * * *"

- name: Backups nobody can delete for 30 days (needs a bucket with S3 Object Lock)
  storage_platform.backup.policy:
    api_url: https://backup.example.com
    api_token: "{{ vault_platform_admin_token }}"
    name: immutable
    lock_mode: governance
    lock_days: 30
"""

RETURN = r"""
policy:
  description: The policy as the API describes it after the task (empty when absent).
  returned: always
  type: dict
  sample:
    id: 3
    name: databases
    enabled: true
    schedule: "15 * * * *"
    timezone: Europe/Berlin
    retention: {keep_hourly: 48, keep_daily: 31}
    rpo_hours: 2
    next_run: "2026-11-27T17:15:00+00:00"
changed_fields:
  description: Names of the fields that were (or in check mode would be) sent to the API.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import API_PREFIX
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import build_argument_spec, run_module

SETTINGS = ("description", "enabled", "schedule", "timezone", "retention", "rpo_hours", "rpo_minutes",
            "verify_schedule", "verify_percent", "prune_schedule", "keep_good", "drill_schedule", "replication_target",
            "replication_schedule", "lock_mode", "lock_days")
SCHEDULES = ("schedule", "verify_schedule", "prune_schedule", "drill_schedule", "replication_schedule")
# The platform stores macros as their expressions (backups/scheduling/cron.py).
CRON_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


def argument_spec():
    return build_argument_spec(dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        description=dict(type="str"),
        enabled=dict(type="bool"),
        schedule=dict(type="str"),
        timezone=dict(type="str"),
        retention=dict(type="dict"),
        rpo_hours=dict(type="int"),
        rpo_minutes=dict(type="int"),
        verify_schedule=dict(type="str"),
        verify_percent=dict(type="int"),
        prune_schedule=dict(type="str"),
        keep_good=dict(type="int"),
        drill_schedule=dict(type="str"),
        replication_target=dict(type="str"),
        replication_schedule=dict(type="str"),
        lock_mode=dict(type="str", choices=["none", "governance", "compliance"]),
        lock_days=dict(type="int"),
    ))


def normalized(field, value):
    if field in SCHEDULES and isinstance(value, str):
        text = " ".join(value.split())
        return CRON_MACROS.get(text.lower(), text)
    return value


def find_policy(client, name):
    for policy in client.list("%s/policies" % API_PREFIX, {"name": name}):
        if policy.get("name") == name:
            return policy
    return None


def wanted_settings(params):
    wanted = {field: params[field] for field in SETTINGS if params[field] is not None}
    if wanted.get("lock_mode") == "none":
        wanted["lock_mode"] = ""  # the API's "no lock"
    return wanted


def diff_view(policy):
    return {field: policy.get(field) for field in ("name",) + SETTINGS} if policy else {}


def handle(module, client):
    params = module.params
    current = find_policy(client, params["name"])
    if params["state"] == "absent":
        if current is None:
            return {"changed": False, "policy": {}, "changed_fields": []}
        result = {"changed": True, "policy": {}, "changed_fields": [],
                  "diff": {"before": diff_view(current), "after": {}}}
        if not module.check_mode:
            deleted = client.delete("%s/policies/%s" % (API_PREFIX, current["id"]))[0]
            result["changed"] = deleted
        return result

    wanted = wanted_settings(params)
    if current is None:
        body = dict(wanted, name=params["name"])
        result = {"changed": True, "changed_fields": sorted(body), "diff": {"before": {}, "after": diff_view(body)}}
        result["policy"] = body if module.check_mode else client.post("%s/policies" % API_PREFIX, body)
        return result

    changes = {field: value for field, value in wanted.items()
               if normalized(field, current.get(field)) != normalized(field, value)}
    after = dict(current, **changes)
    result = {"changed": bool(changes), "changed_fields": sorted(changes), "policy": current,
              "diff": {"before": diff_view(current), "after": diff_view(after)}}
    if changes:
        result["policy"] = after if module.check_mode else client.patch(
            "%s/policies/%s" % (API_PREFIX, current["id"]), changes)
    return result


def main():
    run_module(argument_spec(), handle, mutually_exclusive=[("rpo_hours", "rpo_minutes")],
               required_together=[("lock_mode", "lock_days")])


if __name__ == "__main__":
    main()
