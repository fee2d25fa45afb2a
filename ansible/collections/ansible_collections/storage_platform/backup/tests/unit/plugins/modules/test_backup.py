# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""last_backup_min_age: volumes backed up recently are skipped, so a re-run changes nothing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.storage_platform.backup.plugins.modules.backup import plan, recently_backed_up


def minutes_ago(minutes):
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes)
    return moment.isoformat()


class Catalog:
    """The two reads `plan` makes: a volume by name, and every volume."""

    def __init__(self, volumes):
        self.volumes = volumes

    def find_volume(self, name):
        return next((volume for volume in self.volumes if volume["name"] == name), None)

    def list(self, path, query=None, limit=None):
        assert path == "/api/v1/volumes"
        return list(self.volumes)


class Module:
    def __init__(self, **params):
        self.params = dict({"volume": None, "all": False, "last_backup_min_age": 0}, **params)


VOLUMES = [
    {"id": "1", "name": "fresh", "last_backup": {"id": "b1", "completed_at": minutes_ago(10)}},
    {"id": "2", "name": "stale", "last_backup": {"id": "b2", "completed_at": minutes_ago(120)}},
    {"id": "3", "name": "never", "last_backup": None},
]


def test_without_a_minimum_age_all_volumes_go_in_one_call():
    assert plan(Module(all=True), Catalog(VOLUMES)) == (None, [])


def test_with_a_minimum_age_only_volumes_backed_up_longer_ago_are_triggered():
    volumes, skipped = plan(Module(all=True, last_backup_min_age=60), Catalog(VOLUMES))
    assert [volume["name"] for volume in volumes] == ["stale", "never"]
    assert [(entry["volume_name"], entry["code"]) for entry in skipped] == [("fresh", "recent_backup")]
    assert "backed up 10 minutes ago" in skipped[0]["reason"]


def test_one_named_volume_is_skipped_when_recent():
    volumes, skipped = plan(Module(volume="fresh", last_backup_min_age=30), Catalog(VOLUMES))
    assert volumes == [] and skipped[0]["volume"] == "1"
    assert recently_backed_up(Catalog(VOLUMES), VOLUMES[0], 0) is None
