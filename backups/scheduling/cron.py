"""Cron expressions in a time zone: validation and tick arithmetic that is safe across DST.

A policy's schedule is five cron fields (minute hour day-of-month month day-of-week) read as
*wall-clock* time in the policy's IANA time zone. Beat (django-celery-beat, Celery's crontab)
fires the periodic task; this module is the platform's own model of the same schedule, used to
name the tick a run belongs to (the fan-out's idempotency key), to show the next run, and in
tests with an injected clock.

Contract of the tick arithmetic (see docs/scheduling.md):

* every wall-clock time the expression matches yields exactly one run;
* a matching wall-clock time that does not exist (spring-forward gap, e.g. 02:30 in
  Europe/Berlin on the last Sunday of March) runs at the first instant after the gap (03:00);
  the day is never skipped;
* a matching wall-clock time that occurs twice (fall-back fold) runs at its first occurrence
  only; the day never runs twice;
* returned instants are timezone-aware UTC and never decrease as the wall-clock tick grows.

Expressions are validated with croniter *and* Celery's crontab parser, so anything accepted here
also runs in beat. Two features are refused on purpose: croniter extensions that Celery cannot
run (`L`, `W`, `#`, `?`, a sixth seconds field), and restricting both day-of-month and
day-of-week at once, because cron ORs the two fields while Celery ANDs them - the same text
would mean two different schedules in the two places.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from celery.schedules import crontab as celery_crontab
from croniter import croniter

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELD_NAMES = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
# Longest DST shift in use today is 1 h (a few zones historically 2 h); a margin of 3 h makes
# sure a tick whose wall-clock time was pushed forward by a gap is not missed.
_DST_MARGIN = timedelta(hours=3)
_MAX_GAP_MINUTES = 24 * 60


class InvalidSchedule(ValueError):
    """A cron expression or time zone that the scheduler cannot run; the message says why."""


@dataclass(frozen=True)
class CronSchedule:
    """A validated five-field cron expression read in an IANA time zone."""

    expression: str
    timezone: str

    @property
    def fields(self) -> dict[str, str]:
        """The five fields by Celery/django-celery-beat name (minute, hour, ...)."""
        return dict(zip(FIELD_NAMES, self.expression.split()))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@lru_cache(maxsize=1)
def _known_time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_timezone(name: str) -> str:
    """Return `name` when it is an IANA time zone this host knows, else raise InvalidSchedule."""
    if not isinstance(name, str) or name not in _known_time_zones():
        raise InvalidSchedule(f"'{name}' is not a known IANA time zone (e.g. UTC, Europe/Berlin).")
    return name


def normalize_expression(expression: str) -> str:
    """Return the expression as five single-space-separated fields, or raise InvalidSchedule."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidSchedule("A cron schedule is required (five fields: minute hour day month weekday).")
    text = " ".join(expression.split())
    text = MACROS.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise InvalidSchedule(
            f"'{expression}' has {len(fields)} fields; use five: minute hour day-of-month month day-of-week."
        )
    if not croniter.is_valid(text):
        raise InvalidSchedule(f"'{expression}' is not a valid cron expression.")
    unsupported = _unsupported_syntax(fields)
    if unsupported:
        raise InvalidSchedule(f"'{expression}' uses {unsupported}, which the scheduler does not support.")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    if day_of_month != "*" and day_of_week != "*":
        raise InvalidSchedule(
            f"'{expression}' restricts both day-of-month and day-of-week; restrict only one "
            "(cron and Celery disagree on how to combine them)."
        )
    try:
        celery_crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                       month_of_year=month_of_year, day_of_week=day_of_week)
    except Exception as error:  # Celery raises ValueError or its own ParseException
        raise InvalidSchedule(f"'{expression}' cannot run in Celery beat: {error}") from None
    return text


_NUMERIC_FIELD = re.compile(r"^[0-9*,/-]+$")
_NAMES = {
    3: {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"},
    4: {"sun", "mon", "tue", "wed", "thu", "fri", "sat"},
}


def _unsupported_syntax(fields: list[str]) -> str:
    """Name the first croniter-only feature (L, W, #, ?, unknown words) in the fields, or ''."""
    for index, field in enumerate(fields):
        if _NUMERIC_FIELD.match(field):
            continue
        words = {word.lower() for word in re.findall(r"[A-Za-z]+", field)}
        if index not in _NAMES or "#" in field or "?" in field or not words <= _NAMES[index]:
            return f"'{field}' in the {FIELD_NAMES[index].replace('_', ' ')} field"
    return ""


def parse(expression: str, timezone_name: str = "UTC") -> CronSchedule:
    """Validate and normalize; raise InvalidSchedule with a one-sentence reason."""
    return CronSchedule(normalize_expression(expression), validate_timezone(timezone_name))


def _exists(local: datetime, zone: ZoneInfo) -> bool:
    aware = local.replace(tzinfo=zone, fold=0)
    return aware.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) == local


def wall_clock_to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """Map a naive wall-clock time in `zone` to the UTC instant it runs at (see module contract)."""
    candidate = local
    for _ in range(_MAX_GAP_MINUTES):
        if _exists(candidate, zone):
            # fold=0 is the first occurrence of an ambiguous (fall-back) wall-clock time.
            return candidate.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
        candidate += timedelta(minutes=1)
    raise InvalidSchedule(f"{local} does not exist in {zone.key} for a whole day")  # pragma: no cover


def _local_naive(instant: datetime, zone: ZoneInfo) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return instant.astimezone(zone).replace(tzinfo=None)


def next_run(schedule: CronSchedule, after: datetime) -> datetime:
    """The first run strictly after `after` (aware), as an aware UTC datetime."""
    zone = schedule.zone
    iterator = croniter(schedule.expression, _local_naive(after, zone) - _DST_MARGIN)
    while True:
        candidate = wall_clock_to_utc(iterator.get_next(datetime), zone)
        if candidate > after:
            return candidate


def previous_run(schedule: CronSchedule, at: datetime) -> datetime:
    """The latest run at or before `at` (aware): the tick a run happening at `at` belongs to."""
    zone = schedule.zone
    iterator = croniter(schedule.expression, _local_naive(at, zone) + _DST_MARGIN + timedelta(minutes=1))
    while True:
        candidate = wall_clock_to_utc(iterator.get_prev(datetime), zone)
        if candidate <= at:
            return candidate


def runs_between(schedule: CronSchedule, start: datetime, end: datetime, limit: int = 10_000) -> list[datetime]:
    """All runs in the half-open interval (start, end], oldest first, at most `limit`."""
    runs: list[datetime] = []
    cursor = start
    while len(runs) < limit:
        cursor = next_run(schedule, cursor)
        if cursor > end:
            break
        runs.append(cursor)
    return runs
