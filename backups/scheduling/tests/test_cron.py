"""Cron ticks in a time zone: validation, Europe/Berlin 18:00, and both DST changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backups.scheduling import cron

UTC = timezone.utc


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("expression, normalized", [
    ("0 18 * * *", "0 18 * * *"),
    ("  0   18 * *  * ", "0 18 * * *"),
    ("@daily", "0 0 * * *"),
    ("*/15 8-18 * * mon-fri", "*/15 8-18 * * mon-fri"),
    ("0 18 * jan,jul *", "0 18 * jan,jul *"),
])
def test_valid_expressions_are_normalized(expression, normalized):
    assert cron.normalize_expression(expression) == normalized


@pytest.mark.parametrize("expression, reason", [
    ("", "required"),
    ("0 18 * *", "4 fields"),
    ("0 18 * * * 0", "6 fields"),
    ("61 18 * * *", "not a valid"),
    ("0 18 L * *", "does not support"),
    ("0 18 * * 5#2", "does not support"),
    ("0 18 1W * *", "does not support"),
    ("0 18 1 * 1", "both day-of-month and day-of-week"),
    ("every day", "fields"),
])
def test_invalid_expressions_say_why(expression, reason):
    with pytest.raises(cron.InvalidSchedule, match=reason):
        cron.normalize_expression(expression)


def test_unknown_time_zone_is_refused():
    with pytest.raises(cron.InvalidSchedule, match="not a known IANA time zone"):
        cron.parse("0 18 * * *", "Mars/Olympus")


def test_berlin_18_00_is_17_00_utc_in_winter_and_16_00_utc_in_summer():
    schedule = cron.parse("0 18 * * *", "Europe/Berlin")
    assert cron.next_run(schedule, utc(2026, 1, 15, 12, 0)) == utc(2026, 1, 15, 17, 0)
    assert cron.next_run(schedule, utc(2026, 7, 15, 12, 0)) == utc(2026, 7, 15, 16, 0)
    # A run exactly at the tick belongs to it; a second later the next tick is tomorrow's.
    assert cron.previous_run(schedule, utc(2026, 7, 15, 16, 0)) == utc(2026, 7, 15, 16, 0)
    assert cron.next_run(schedule, utc(2026, 7, 15, 16, 0)) == utc(2026, 7, 16, 16, 0)


def test_daily_18_00_runs_once_a_day_across_both_dst_changes():
    schedule = cron.parse("0 18 * * *", "Europe/Berlin")
    spring = cron.runs_between(schedule, utc(2026, 3, 27), utc(2026, 3, 31))
    assert spring == [utc(2026, 3, 27, 17), utc(2026, 3, 28, 17), utc(2026, 3, 29, 16), utc(2026, 3, 30, 16)]
    autumn = cron.runs_between(schedule, utc(2026, 10, 23), utc(2026, 10, 27))
    assert autumn == [utc(2026, 10, 23, 16), utc(2026, 10, 24, 16), utc(2026, 10, 25, 17), utc(2026, 10, 26, 17)]


def test_time_in_the_spring_forward_gap_runs_at_the_end_of_the_gap_not_skipping_the_day():
    # 2026-03-29 Europe/Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")
    runs = cron.runs_between(schedule, utc(2026, 3, 27), utc(2026, 3, 31))
    assert runs == [utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    # Any moment of that morning after 03:00 CEST belongs to that day's tick.
    assert cron.previous_run(schedule, utc(2026, 3, 29, 1, 10)) == utc(2026, 3, 29, 1, 0)


def test_time_in_the_fall_back_fold_runs_once_at_its_first_occurrence():
    # 2026-10-25 Europe/Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")
    runs = cron.runs_between(schedule, utc(2026, 10, 23), utc(2026, 10, 27))
    assert runs == [utc(2026, 10, 23, 0, 30), utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # The second 02:30 (01:30 UTC) still belongs to the first one's tick: no second run.
    assert cron.previous_run(schedule, utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 25, 0, 30)


def test_runs_never_go_backwards_through_a_dst_night_for_an_hourly_schedule():
    schedule = cron.parse("30 * * * *", "Europe/Berlin")
    for start in (utc(2026, 3, 28, 22), utc(2026, 10, 24, 22)):
        runs = cron.runs_between(schedule, start, start + timedelta(hours=8))
        assert runs == sorted(set(runs)), "each run once, in order"
        assert all(later - earlier <= timedelta(hours=2) for earlier, later in zip(runs, runs[1:]))


def test_fields_map_to_django_celery_beat_names():
    schedule = cron.parse("5 4 * 2 mon", "UTC")
    assert schedule.fields == {"minute": "5", "hour": "4", "day_of_month": "*", "month_of_year": "2", "day_of_week": "mon"}
