#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup
short_description: Back up one volume or all volumes now and wait for the result
description:
  - Triggers a backup of O(volume) (C(POST /api/v1/volumes/{id}/backups)) or of every volume
    (O(all), C(POST /api/v1/backups) with V(all) set to V(true)), then waits for each backup's job.
  - The platform runs one backup at a time per volume. When one is already queued or running,
    O(on_conflict=attach) waits for that one instead of failing (reported as not changed).
  - With O(last_backup_min_age), volumes whose newest completed backup is younger than that
    many minutes are skipped (like C(ec2_snapshot)'s C(last_snapshot_min_age)), so running the
    task again soon after reports C(changed=false).
  - Reports C(changed=true) when it started at least one backup.
  - In check mode nothing is triggered; the task reports whether a backup would start.
version_added: 1.0.0
extends_documentation_fragment:
  - storage_platform.backup.platform
  - storage_platform.backup.platform.wait
options:
  volume:
    description:
      - Name or id of the volume to back up. Mutually exclusive with O(all).
    type: str
  all:
    description:
      - Back up every volume.
    type: bool
    default: false
  idempotency_key:
    description:
      - Sent as the C(Idempotency-Key) header with O(volume); repeating the task with the same
        key answers the backup the first call started instead of starting another.
      - The platform ignores it for O(all); there O(on_conflict=attach) keeps a re-run from
        failing on backups that are still running.
    type: str
  on_conflict:
    description:
      - What to do when a backup of the volume is already queued or running.
    type: str
    choices: [attach, fail]
    default: attach
  last_backup_min_age:
    description:
      - Skip a volume whose newest completed backup finished less than this many minutes ago;
        V(0) backs up every volume named.
      - With O(all), the volumes are then triggered one by one, so that only the others start.
    type: int
    default: 0
    version_added: 2.0.0
attributes:
  check_mode:
    description: Nothing is triggered; the task reports whether a backup would start (volumes backed up within O(last_backup_min_age) would not).
    support: full
  diff_mode:
    description: No diff is returned.
    support: none
"""

EXAMPLES = r"""
- name: Back up db-1 and wait up to an hour
  storage_platform.backup.backup:
    api_url: https://backup.example.com
    api_token: "{{ vault_platform_backup_token }}"
    volume: db-1
    wait_timeout: 3600

- name: Back up everything before an upgrade
  storage_platform.backup.backup:
    all: true
    wait_timeout: 7200

- name: Back up the volumes not backed up in the last hour (a re-run changes nothing)
  storage_platform.backup.backup:
    all: true
    last_backup_min_age: 60
"""

RETURN = r"""
backup:
  description: The backup (refreshed after waiting) when one volume was backed up.
  returned: when O(volume) is given and not in check mode
  type: dict
  sample:
    id: 9b1f7c9e-1d7e-4a0e-b2a4-1f5c2f0f7a11
    volume: 3c0d5c2e-8f1e-4a51-9f83-5f2f3a0e9b7d
    volume_name: db-1
    status: completed
    job: 6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a
    created_at: "2026-11-27T16:00:00Z"
    completed_at: "2026-11-27T16:00:09Z"
    stats: {files: 12, bytes_read: 1048576, bytes_stored: 524288}
backups:
  description: Every backup this task started or attached to, refreshed after waiting.
  returned: always
  type: list
  elements: dict
jobs:
  description: The final state of each backup's job (when O(wait)).
  returned: always
  type: list
  elements: dict
attached:
  description: True when only already running backups were awaited and none was started.
  returned: always
  type: bool
skipped:
  description:
    - The volumes not backed up, each with C(volume), C(volume_name), C(code) and C(reason).
      With O(all) they are those the platform refused (for example a volume being deleted); with
      O(last_backup_min_age), those backed up recently (code C(recent_backup)).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import API_PREFIX, PlatformApiError
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import build_argument_spec, run_module, wait_for_jobs
from ansible_collections.storage_platform.backup.plugins.module_utils.catalog import backup_age_minutes, newest_backup_of


def argument_spec():
    return build_argument_spec(dict(
        volume=dict(type="str"),
        all=dict(type="bool", default=False),
        idempotency_key=dict(type="str", no_log=False),
        on_conflict=dict(type="str", choices=["attach", "fail"], default="attach"),
        last_backup_min_age=dict(type="int", default=0),
    ), wait=True)


def backups_in(answer):
    """The backups of a trigger answer: one backup, or ``{"results": [...]}`` for all."""
    if isinstance(answer, list):
        return answer
    if isinstance(answer, dict):
        if isinstance(answer.get("results"), list):
            return answer["results"]
        return [answer]
    return []


def running_backup(client, conflict_detail):
    """The backup a ``backup_in_progress`` conflict names, or None when it is not a backup
    (a restore holds the volume) or it has already gone."""
    if not isinstance(conflict_detail, dict) or conflict_detail.get("kind", "backup") != "backup":
        return None
    if conflict_detail.get("backup"):
        return client.get("%s/backups/%s" % (API_PREFIX, conflict_detail["backup"]))
    return None


def find_volume(client, name):
    volume = client.find_volume(name)
    if volume is None:
        raise PlatformApiError("volume %s does not exist" % name, status=404, code="volume_not_found")
    return volume


def recently_backed_up(client, volume, min_age):
    """A ``skipped`` entry when the volume's newest completed backup is younger than `min_age`
    minutes, else None."""
    if min_age <= 0:
        return None
    age = backup_age_minutes(newest_backup_of(client, volume))
    if age is None or age >= min_age:
        return None
    return {"volume": volume["id"], "volume_name": volume["name"], "code": "recent_backup",
            "reason": "backed up %.0f minutes ago (last_backup_min_age is %d)" % (age, min_age)}


def trigger_one(module, client, volume, headers):
    path = "%s/volumes/%s/backups" % (API_PREFIX, volume["id"])
    try:
        return {"backups": backups_in(client.post(path, {}, headers=headers)), "attached": [], "skipped": []}
    except PlatformApiError as error:
        if error.code != "backup_in_progress" or module.params["on_conflict"] != "attach":
            raise
        running = running_backup(client, error.detail)
        if running is None:
            raise
        return {"backups": [], "attached": [running], "skipped": []}


def trigger_all(module, client, headers):
    """Back up every volume. The platform skips volumes it cannot back up now and says why;
    with on_conflict=attach the backups already running are awaited too."""
    answer = client.post("%s/backups" % API_PREFIX, {"all": True}, headers=headers)
    started = backups_in(answer)
    skipped = answer.get("skipped", []) if isinstance(answer, dict) else []
    attached, still_skipped = [], []
    for entry in skipped:
        running = None
        if module.params["on_conflict"] == "attach" and entry.get("code") == "backup_in_progress":
            running = running_backup(client, entry.get("detail"))
        if running is not None:
            attached.append(running)
        else:
            still_skipped.append(entry)
    return {"backups": started, "attached": attached, "skipped": still_skipped}


def plan(module, client):
    """``(volumes to back up, skipped entries)``; volumes is None for "all, in one call"."""
    params = module.params
    min_age = params["last_backup_min_age"]
    if params["volume"]:
        volumes = [find_volume(client, params["volume"])]
    elif min_age > 0:
        volumes = client.list("%s/volumes" % API_PREFIX)
    else:
        return None, []
    wanted, skipped = [], []
    for volume in volumes:
        recent = recently_backed_up(client, volume, min_age)
        if recent is not None:
            skipped.append(recent)
        else:
            wanted.append(volume)
    return wanted, skipped


def trigger(module, client, volumes):
    headers = {"Idempotency-Key": module.params["idempotency_key"]} if module.params["idempotency_key"] else None
    if volumes is None:
        return trigger_all(module, client, headers)
    result = {"backups": [], "attached": [], "skipped": []}
    for volume in volumes:
        one = trigger_one(module, client, volume, headers)
        for key in result:
            result[key].extend(one[key])
    return result


def handle(module, client):
    params = module.params
    # Checked here, not with mutually_exclusive/required_one_of: `all` has a default, which
    # those checks would count as given.
    if bool(params["volume"]) == bool(params["all"]):
        return {"changed": False, "backups": [], "jobs": [], "attached": False, "skipped": [],
                "failed_msg": "give exactly one of volume or all=true"}
    if params["last_backup_min_age"] < 0:
        return {"changed": False, "backups": [], "jobs": [], "attached": False, "skipped": [],
                "failed_msg": "last_backup_min_age must be 0 or more minutes"}
    volumes, skipped = plan(module, client)
    if module.check_mode:
        would_start = bool(volumes if volumes is not None else client.list("%s/volumes" % API_PREFIX, limit=1))
        return {"changed": would_start, "backups": [], "jobs": [], "attached": False, "skipped": skipped}
    triggered = trigger(module, client, volumes)
    started, attached = triggered["backups"], triggered["attached"]
    backups = started + attached
    result = {"changed": bool(started), "backups": backups, "jobs": [], "attached": bool(attached) and not started,
              "skipped": skipped + triggered["skipped"]}
    if params["wait"] and backups:
        jobs, failures = wait_for_jobs(client, backups, params)
        result["jobs"] = jobs
        result["backups"] = [client.get("%s/backups/%s" % (API_PREFIX, item["id"])) or item for item in backups]
        if failures:
            result["failed_msg"] = "; ".join(failures)
    if params["volume"] and result["backups"]:
        result["backup"] = result["backups"][0]
    return result


def main():
    run_module(argument_spec(), handle)


if __name__ == "__main__":
    main()
