# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RPO status with the platform's definition, and checksum comparison."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.storage_platform.backup.plugins.module_utils.catalog import (
    backup_age_minutes,
    compare_checksums,
    newest_backup_of,
    parse_timestamp,
    rpo_status,
)

NOW = datetime.datetime(2026, 3, 4, 12, 0, tzinfo=datetime.timezone.utc)


def test_a_volume_created_a_minute_ago_and_never_backed_up_is_within_its_rpo():
    volume = {"rpo_hours": 24, "created_at": "2026-03-04T11:59:00Z"}
    status = rpo_status(volume, None, now=NOW)
    assert status["violation"] is False
    assert status["reference"] == "created_at" and status["last_backup_id"] is None


def test_a_volume_never_backed_up_violates_once_its_creation_is_older_than_the_rpo():
    volume = {"rpo_hours": 4, "created_at": "2026-03-04T07:59:59+00:00"}
    assert rpo_status(volume, None, now=NOW)["violation"] is True


def test_the_newest_completed_backup_is_what_counts_once_there_is_one():
    volume = {"rpo_hours": 4, "created_at": "2020-01-01T00:00:00Z"}
    fresh = {"id": "b-1", "completed_at": "2026-03-04T09:00:00Z"}
    status = rpo_status(volume, fresh, now=NOW)
    assert status == {"last_backup_id": "b-1", "last_backup_at": "2026-03-04T09:00:00Z", "reference": "last_backup",
                      "age_hours": 3.0, "age_minutes": 180.0, "rpo_hours": 4, "rpo_minutes": 240,
                      "violation": False}
    stale = {"id": "b-0", "completed_at": "2026-03-04T07:00:00Z"}
    assert rpo_status(volume, stale, now=NOW)["violation"] is True


def test_exactly_at_the_rpo_is_not_yet_a_violation_as_on_the_platform():
    volume = {"rpo_hours": 2, "created_at": "2026-03-04T10:00:00Z"}
    assert rpo_status(volume, None, now=NOW)["violation"] is False


def test_a_15_minute_rpo_is_violated_after_16_minutes_without_a_backup():
    volume = {"rpo_minutes": 15, "rpo_hours": 0.25, "created_at": "2020-01-01T00:00:00Z"}
    last = {"id": "b-2", "completed_at": "2026-03-04T11:44:00Z"}
    assert rpo_status(volume, last, now=NOW)["violation"] is True
    within = rpo_status(volume, {"id": "b-3", "completed_at": "2026-03-04T11:46:00Z"}, now=NOW)
    assert (within["violation"], within["age_minutes"], within["rpo_hours"]) == (False, 14.0, 0.25)


def test_a_platform_answering_only_rpo_hours_is_judged_in_minutes_from_it():
    assert rpo_status({"rpo_hours": 0.25, "created_at": "2026-03-04T11:44:00Z"}, None, now=NOW)["rpo_minutes"] == 15


def test_the_default_rpo_is_a_day():
    assert rpo_status({"created_at": "2026-03-03T11:00:00Z"}, None, now=NOW)["rpo_hours"] == 24


def test_the_volume_s_own_last_backup_field_saves_a_query():
    class NoQueries:
        def list(self, *arguments, **options):
            raise AssertionError("no query expected")

    assert newest_backup_of(NoQueries(), {"id": "v", "last_backup": None}) is None
    newest = {"id": "b", "completed_at": "2026-03-04T11:00:00Z"}
    assert newest_backup_of(NoQueries(), {"id": "v", "last_backup": newest}) == newest
    assert backup_age_minutes(newest, now=NOW) == 60.0
    assert backup_age_minutes(None, now=NOW) is None


def test_timestamps_parse_with_z_and_offsets():
    assert parse_timestamp("2026-03-04T12:00:00Z") == NOW
    assert parse_timestamp("2026-03-04T13:00:00+01:00") == NOW
    assert parse_timestamp("") is None


def test_checksum_comparison_names_missing_unexpected_and_different_paths():
    expected = {"a": "sha256:1", "b": "sha256:2", "dir": "dir"}
    actual = {"a": "sha256:1", "b": "sha256:9", "extra": "sha256:3"}
    assert compare_checksums(expected, actual) == {"missing": ["dir"], "unexpected": ["extra"], "different": ["b"]}
