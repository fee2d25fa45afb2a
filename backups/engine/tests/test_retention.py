"""Retention rules (restic's semantics), tested as a pure function with injected times."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from backups.engine.errors import InvalidRetentionPolicy
from backups.engine.retention import (RetentionPolicy, apply_retention, format_duration,
                                      parse_duration)

pytestmark = pytest.mark.engine

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def hourly_snapshots(count: int, end: dt.datetime = NOW):
    return [(f"s{index:04d}", end - dt.timedelta(hours=index)) for index in range(count)]


def daily_snapshots(count: int, end: dt.datetime = NOW):
    return [(f"d{index:04d}", end - dt.timedelta(days=index)) for index in range(count)]


def test_keep_last_keeps_the_newest_n():
    keep, remove, reasons = apply_retention(hourly_snapshots(10), RetentionPolicy(keep_last=3),
                                            NOW)
    assert keep == ["s0000", "s0001", "s0002"]
    assert remove == [f"s{index:04d}" for index in range(3, 10)]
    assert reasons["s0000"] == ["last snapshot"]
    assert "s0005" not in reasons


def test_input_order_does_not_matter():
    snapshots = hourly_snapshots(10)
    forward = apply_retention(snapshots, RetentionPolicy(keep_last=4), NOW)
    backward = apply_retention(list(reversed(snapshots)), RetentionPolicy(keep_last=4), NOW)
    assert forward == backward


def test_keep_daily_keeps_the_newest_snapshot_of_each_day():
    # four snapshots a day (00:00, 06:00, 12:00, 18:00) for five days
    snapshots = [(f"{day}-{hour:02d}", dt.datetime(2026, 11, day, hour, tzinfo=UTC))
                 for day in range(20, 25) for hour in (0, 6, 12, 18)]
    keep, remove, reasons = apply_retention(snapshots, RetentionPolicy(keep_daily=3), NOW)
    assert keep == ["24-18", "23-18", "22-18"]
    assert len(remove) == 17
    assert reasons["23-18"] == ["daily snapshot"]


def test_days_without_snapshots_do_not_use_up_the_count():
    snapshots = [("a", dt.datetime(2026, 11, 27, 1, tzinfo=UTC)),
                 ("b", dt.datetime(2026, 11, 20, 1, tzinfo=UTC)),
                 ("c", dt.datetime(2026, 11, 1, 1, tzinfo=UTC)),
                 ("d", dt.datetime(2026, 10, 1, 1, tzinfo=UTC))]
    keep, remove, _ = apply_retention(snapshots, RetentionPolicy(keep_daily=3), NOW)
    assert keep == ["a", "b", "c"] and remove == ["d"]


def test_weekly_uses_iso_weeks():
    # 2026-11-23 is a Monday; 2026-11-22 a Sunday (previous ISO week)
    snapshots = [("mon", dt.datetime(2026, 11, 23, 9, tzinfo=UTC)),
                 ("sun", dt.datetime(2026, 11, 22, 9, tzinfo=UTC)),
                 ("sat", dt.datetime(2026, 11, 21, 9, tzinfo=UTC)),
                 ("prev-mon", dt.datetime(2026, 11, 16, 9, tzinfo=UTC)),
                 ("two-back", dt.datetime(2026, 11, 9, 9, tzinfo=UTC))]
    keep, remove, _ = apply_retention(snapshots, RetentionPolicy(keep_weekly=2), NOW)
    assert keep == ["mon", "sun"]
    assert remove == ["sat", "prev-mon", "two-back"]


def test_weekly_across_a_year_boundary():
    # 2026-12-31 (Thu) and 2027-01-01 (Fri) are in the same ISO week 2026-W53
    snapshots = [("fri", dt.datetime(2027, 1, 1, tzinfo=UTC)),
                 ("thu", dt.datetime(2026, 12, 31, tzinfo=UTC)),
                 ("week-before", dt.datetime(2026, 12, 24, tzinfo=UTC))]
    keep, _, _ = apply_retention(snapshots, RetentionPolicy(keep_weekly=2), NOW)
    assert keep == ["fri", "week-before"]


def test_monthly_and_yearly():
    snapshots = [(f"{year}-{month:02d}", dt.datetime(year, month, 15, tzinfo=UTC))
                 for year in (2024, 2025, 2026) for month in range(1, 13)]
    keep, _, reasons = apply_retention(
        snapshots, RetentionPolicy(keep_monthly=3, keep_yearly=3), NOW)
    assert keep == ["2026-12", "2026-11", "2026-10", "2025-12", "2024-12"]
    assert reasons["2026-12"] == ["monthly snapshot", "yearly snapshot"]
    assert reasons["2025-12"] == ["yearly snapshot"]


def test_hourly():
    snapshots = [(f"m{minute}", NOW - dt.timedelta(minutes=minute)) for minute in range(0, 180, 20)]
    keep, _, _ = apply_retention(snapshots, RetentionPolicy(keep_hourly=2), NOW)
    # NOW is 18:00: m0 is the 18h bucket, m20..m60 are 17h (newest: m20), 16h next
    assert keep == ["m0", "m20"]


def test_periods_follow_the_policy_time_zone():
    berlin = ZoneInfo("Europe/Berlin")
    # 23:30 UTC on the 26th is 00:30 on the 27th in Berlin (UTC+1 in November)
    snapshots = [("late", dt.datetime(2026, 11, 26, 23, 30, tzinfo=UTC)),
                 ("evening", dt.datetime(2026, 11, 26, 20, 0, tzinfo=UTC))]
    in_utc, _, _ = apply_retention(snapshots, RetentionPolicy(keep_daily=2), NOW)
    in_berlin, _, _ = apply_retention(snapshots, RetentionPolicy(keep_daily=2), NOW,
                                      timezone=berlin)
    assert in_utc == ["late"]  # one UTC day: only the newest
    assert in_berlin == ["late", "evening"]  # two Berlin days
    # an aware `now` in the policy's zone is enough (Repository.forget passes only `now`)
    via_now, _, _ = apply_retention(snapshots, RetentionPolicy(keep_daily=2),
                                    NOW.astimezone(berlin))
    assert via_now == in_berlin


def test_rules_combine_and_reasons_list_every_rule():
    snapshots = daily_snapshots(40)
    policy = RetentionPolicy(keep_last=2, keep_daily=5, keep_weekly=3)
    keep, remove, reasons = apply_retention(snapshots, policy, NOW)
    assert reasons["d0000"] == ["last snapshot", "daily snapshot", "weekly snapshot"]
    assert reasons["d0004"] == ["daily snapshot"]
    assert set(keep) | set(remove) == {snapshot_id for snapshot_id, _ in snapshots}
    assert not set(keep) & set(remove)
    # NOW is a Friday: the weekly keeps are this week's newest and the two Sundays before
    assert [snapshot_id for snapshot_id in keep if "weekly snapshot" in reasons[snapshot_id]] == \
        ["d0000", "d0005", "d0012"]
    assert len(keep) == 7


def test_keep_within_counts_back_from_the_newest_snapshot():
    # backups stopped 30 days ago: "keep within 7d" still keeps the last week of them
    stopped = NOW - dt.timedelta(days=30)
    snapshots = daily_snapshots(20, end=stopped)
    keep, _, reasons = apply_retention(snapshots, RetentionPolicy(keep_within="7d"), NOW)
    assert keep == [f"d{index:04d}" for index in range(8)]  # 0..7 days before the newest
    assert reasons["d0003"] == ["within 7d"]


def test_keep_within_can_count_back_from_now():
    snapshots = daily_snapshots(20)
    keep, _, _ = apply_retention(snapshots, RetentionPolicy(keep_within=dt.timedelta(days=2)),
                                 NOW - dt.timedelta(days=1), within_reference="now")
    # reference is yesterday: everything from three days ago on is kept
    assert keep == ["d0000", "d0001", "d0002", "d0003"]


def test_an_empty_policy_keeps_everything():
    keep, remove, reasons = apply_retention(hourly_snapshots(5), RetentionPolicy(), NOW)
    assert len(keep) == 5 and remove == []
    assert "keep everything" in reasons["s0003"][0]


def test_no_snapshots():
    assert apply_retention([], RetentionPolicy(keep_last=1), NOW) == ([], [], {})


def test_naive_times_are_utc():
    snapshots = [("naive", dt.datetime(2026, 11, 27, 10)),
                 ("aware", dt.datetime(2026, 11, 27, 11, tzinfo=UTC))]
    keep, _, _ = apply_retention(snapshots, RetentionPolicy(keep_last=1), NOW)
    assert keep == ["aware"]


def test_from_dict_parses_counts_and_durations():
    policy = RetentionPolicy.from_dict({"keep_last": 7, "keep_daily": 14, "keep_within": "7d"})
    assert policy.keep_last == 7 and policy.keep_daily == 14
    assert policy.keep_within == dt.timedelta(days=7)
    assert policy.to_dict() == {"keep_last": 7, "keep_daily": 14, "keep_within": "7d"}
    assert RetentionPolicy.from_dict(None).empty


@pytest.mark.parametrize("values, message", [
    ({"keep_forever": 1}, "unknown retention rule"),
    ({"keep_last": -1}, "from 0"),
    ({"keep_last": True}, "whole number"),
    ({"keep_daily": "7"}, "whole number"),
    ({"keep_within": "a week"}, "duration"),
    ({"keep_within": "7"}, "duration"),
    ({"keep_within": 7}, "duration"),
    ("keep_last=7", "object"),
])
def test_invalid_policies_are_refused_with_a_clear_message(values, message):
    with pytest.raises(InvalidRetentionPolicy, match=message) as caught:
        RetentionPolicy.from_dict(values)
    assert caught.value.code == "invalid_retention"
    assert isinstance(caught.value, ValueError)  # serializers catch ValueError


def test_keyword_construction_accepts_a_duration_string():
    # backups/runners/prune.py builds RetentionPolicy(**policy.retention) directly
    assert RetentionPolicy(keep_within="1y6m").keep_within == dt.timedelta(days=365 + 180)


@pytest.mark.parametrize("text, expected", [
    ("7d", dt.timedelta(days=7)), ("36h", dt.timedelta(hours=36)),
    ("2w", dt.timedelta(days=14)), ("1y6m", dt.timedelta(days=545)),
    ("1d12h", dt.timedelta(days=1, hours=12)), ("0d", dt.timedelta(0)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


def test_format_duration_round_trips_days_and_hours():
    for text in ("7d", "36h", "1d12h"):
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_snapshots_the_caller_keeps_survive_the_rules_with_their_reason():
    keep, remove, reasons = apply_retention(
        hourly_snapshots(6), RetentionPolicy(keep_last=2), NOW,
        keep={"s0004": "last good snapshot (verified)", "s0000": "last good snapshot (restored)", "gone": "x"})
    assert keep == ["s0000", "s0001", "s0004"] and remove == ["s0002", "s0003", "s0005"]
    assert reasons["s0004"] == ["last good snapshot (verified)"]
    assert reasons["s0000"] == ["last snapshot", "last good snapshot (restored)"]
    assert "gone" not in reasons
    _, _, everything = apply_retention(hourly_snapshots(2), RetentionPolicy(), NOW, keep={"s0001": "good"})
    assert everything["s0001"] == ["no retention policy: keep everything", "good"]
