"""storagectl judges the RPO as the platform does: in minutes, to the second."""

from __future__ import annotations

import datetime

from storagectl.cli import describe_rpo, rpo_status

LAST_BACKUP = {"last_backup": {"completed_at": "2026-01-01T12:00:00Z"}}


def at(minutes: int) -> datetime.datetime:
    return datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC) + datetime.timedelta(minutes=minutes)


def test_a_15_minute_rpo_is_late_after_16_minutes_and_shown_in_minutes():
    volume = {"rpo_minutes": 15, "rpo_hours": 0.25, **LAST_BACKUP}
    assert (rpo_status(volume, at(15)), rpo_status(volume, at(16))) == ("ok", "late")
    assert describe_rpo(volume) == "15 min"


def test_a_server_answering_only_rpo_hours_is_read_in_hours():
    volume = {"rpo_hours": 2, **LAST_BACKUP}
    assert (rpo_status(volume, at(120)), rpo_status(volume, at(121))) == ("ok", "late")
    assert describe_rpo(volume) == "2 h" and describe_rpo({"rpo_minutes": 90}) == "1 h 30 min"
