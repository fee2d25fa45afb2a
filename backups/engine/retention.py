"""Retention: which snapshots a policy keeps, with restic's `forget` semantics.

`apply_retention` is a pure function of the snapshot list, the policy and the time zone, so
it is unit-tested without a repository. Rules (restic, `internal/restic/snapshot_policy.go`):

* Snapshots are considered newest first.
* `keep_last` n: the n newest snapshots.
* `keep_hourly/daily/weekly/monthly/yearly` n: walking newest first, a snapshot is kept when
  it is the first one seen in a period (hour, calendar day, ISO week, calendar month,
  calendar year, in `timezone`) that differs from the last kept period of that rule, until n
  periods are kept. So each period keeps its NEWEST snapshot, and periods without snapshots
  do not count.
* `keep_within` d: every snapshot taken within d before the reference time. The reference
  is the NEWEST SNAPSHOT (restic), not the clock: if backups stop for a month, the last
  week of them is still kept. `within_reference="now"` measures from `now` instead.
* A snapshot is kept if any rule keeps it; reasons record every rule that did.
* A policy with no rule at all keeps everything (restic refuses to forget with an empty
  policy; so do we, rather than delete every snapshot).
* `keep` ({snapshot id: reason}) names snapshots the caller keeps whatever the rules say
  (the platform's "last good snapshots", which the engine cannot judge: it knows nothing of
  verify or restore history). Its ids are kept with that reason added; ids that are not
  among the snapshots are ignored. Like restic's `--keep-tag`, but chosen by the caller.

Counts are whole numbers >= 0 (0: rule off). `keep_within` is a `timedelta`, or a string in
restic's notation: a sequence of <number><unit> with units y (365 days), m (30 days),
w (7 days), d (days), h (hours), e.g. "7d", "36h", "1y6m". Calendar-exact months and years
are not needed for a "keep everything newer than" rule; the approximation is documented in
`docs/storage-backends.md`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import InvalidRetentionPolicy

COUNT_RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
               "keep_yearly")
RULES = COUNT_RULES + ("keep_within",)
MAX_COUNT = 1_000_000

_UNIT_DAYS = {"y": 365, "m": 30, "w": 7, "d": 1}
_DURATION_PATTERN = re.compile(r"(\d+)([ymwdh])")


def parse_duration(text: str) -> dt.timedelta:
    """"1y6m", "7d", "36h" -> timedelta; `InvalidRetentionPolicy` for anything else."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    if not cleaned or _DURATION_PATTERN.sub("", cleaned):
        raise InvalidRetentionPolicy(
            f"keep_within must be a duration such as \"7d\", \"36h\" or \"1y6m\", not {text!r}")
    total = dt.timedelta()
    for number, unit in _DURATION_PATTERN.findall(cleaned):
        if unit == "h":
            total += dt.timedelta(hours=int(number))
        else:
            total += dt.timedelta(days=int(number) * _UNIT_DAYS[unit])
    return total


def format_duration(value: dt.timedelta) -> str:
    """The inverse of `parse_duration` for days/hours ("7d", "36h", "1d12h")."""
    hours = int(value.total_seconds() // 3600)
    days, hours = divmod(hours, 24)
    return (f"{days}d" if days else "") + (f"{hours}h" if hours or not days else "")


@dataclass(frozen=True)
class RetentionPolicy:
    """Which snapshots to keep. Every rule defaults to off; see the module docstring."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: dt.timedelta | None = None

    def __post_init__(self):
        for rule in COUNT_RULES:
            value = getattr(self, rule)
            if value is None:
                object.__setattr__(self, rule, 0)
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidRetentionPolicy(f"{rule} must be a whole number, not {value!r}")
            if not 0 <= value <= MAX_COUNT:
                raise InvalidRetentionPolicy(f"{rule} must be a whole number from 0 to {MAX_COUNT}")
        within = self.keep_within
        if isinstance(within, str):
            within = parse_duration(within)
        elif within is not None and not isinstance(within, dt.timedelta):
            raise InvalidRetentionPolicy(
                f"keep_within must be a duration such as \"7d\", not {within!r}")
        if within is not None and within < dt.timedelta(0):
            raise InvalidRetentionPolicy("keep_within must not be negative")
        if within == dt.timedelta(0):
            within = None  # "0d" keeps nothing extra: the same as no rule
        object.__setattr__(self, "keep_within", within)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "RetentionPolicy":
        """Build from a dict like `{"keep_last": 7, "keep_within": "7d"}`; unknown keys
        and bad values raise `InvalidRetentionPolicy` (a 400 in the API)."""
        if values is None:
            return cls()
        if not isinstance(values, dict):
            raise InvalidRetentionPolicy("retention must be an object such as {\"keep_last\": 7}")
        unknown = sorted(set(values) - set(RULES))
        if unknown:
            raise InvalidRetentionPolicy(f"unknown retention rule(s): {', '.join(unknown)}; "
                                         f"known: {', '.join(RULES)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The non-default rules, JSON-ready (`keep_within` as a duration string)."""
        result: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "keep_within":
                if value is not None:
                    result[item.name] = format_duration(value)
            elif value:
                result[item.name] = value
        return result

    @property
    def empty(self) -> bool:
        """True when no rule is set (such a policy keeps everything)."""
        return not any(getattr(self, rule) for rule in COUNT_RULES) and self.keep_within is None


def _period(rule: str, moment: dt.datetime) -> tuple:
    if rule == "keep_hourly":
        return moment.year, moment.month, moment.day, moment.hour
    if rule == "keep_daily":
        return moment.year, moment.month, moment.day
    if rule == "keep_weekly":
        iso = moment.isocalendar()
        return iso[0], iso[1]
    if rule == "keep_monthly":
        return moment.year, moment.month
    return (moment.year,)


_REASON = {"keep_hourly": "hourly snapshot", "keep_daily": "daily snapshot",
           "keep_weekly": "weekly snapshot", "keep_monthly": "monthly snapshot",
           "keep_yearly": "yearly snapshot"}


def _aware(moment: dt.datetime) -> dt.datetime:
    # Naive times are taken as UTC (the engine stores UTC); mixing naive and aware would raise.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def apply_retention(snapshots, policy: RetentionPolicy, now: dt.datetime | None = None, *,
                    timezone: dt.tzinfo | None = None, within_reference: str = "latest",
                    keep: Mapping[str, str] | None = None):
    """Split `snapshots` ([(id, datetime)], any order) into (keep, remove, reasons).

    `keep` and `remove` are lists of ids, newest first; `reasons` maps every kept id to the
    list of rules that kept it. `timezone` decides where days/weeks/months begin; when it is
    not given, the zone of an aware `now` is used (so `now` in the policy's zone is enough),
    else UTC. `now` is the reference for `keep_within` only when `within_reference="now"`;
    by default the newest snapshot is (see the module docstring). `keep` ({id: reason}) is
    kept whatever the rules say, with its reason recorded.
    """
    if within_reference not in ("latest", "now"):
        raise ValueError("within_reference must be 'latest' or 'now'")
    zone = timezone or (now.tzinfo if now is not None and now.tzinfo is not None else None) \
        or dt.timezone.utc
    ordered = sorted(((str(snapshot_id), _aware(moment)) for snapshot_id, moment in snapshots),
                     key=lambda item: (item[1], item[0]), reverse=True)
    reasons: dict[str, list[str]] = {}
    if not ordered:
        return [], [], reasons
    if policy.empty:
        for snapshot_id, _ in ordered:
            reasons[snapshot_id] = ["no retention policy: keep everything"] + (
                [keep[snapshot_id]] if keep and snapshot_id in keep else [])
        return [snapshot_id for snapshot_id, _ in ordered], [], reasons

    remaining = {rule: getattr(policy, rule) for rule in COUNT_RULES}
    last_period: dict[str, tuple | None] = {rule: None for rule in COUNT_RULES}
    within_start = None
    if policy.keep_within is not None:
        if within_reference == "now":
            reference = _aware(now or dt.datetime.now(dt.timezone.utc))
        else:
            reference = ordered[0][1]
        within_start = reference - policy.keep_within

    kept, remove = [], []
    for snapshot_id, moment in ordered:
        why = []
        if remaining["keep_last"] > 0:
            remaining["keep_last"] -= 1
            why.append("last snapshot")
        local = moment.astimezone(zone)
        for rule in COUNT_RULES[1:]:
            if remaining[rule] <= 0:
                continue
            period = _period(rule, local)
            if period != last_period[rule]:
                last_period[rule] = period
                remaining[rule] -= 1
                why.append(_REASON[rule])
        if within_start is not None and moment >= within_start:
            why.append(f"within {format_duration(policy.keep_within)}")
        if keep and snapshot_id in keep:
            why.append(keep[snapshot_id])
        if why:
            kept.append(snapshot_id)
            reasons[snapshot_id] = why
        else:
            remove.append(snapshot_id)
    return kept, remove, reasons
