"""The recovery point objective (RPO) in its one unit: whole minutes.

Policies and volume overrides store `rpo_minutes`; `rpo_hours` is the same value in hours,
kept for clients written before minutes existed. In requests `rpo_hours` is a whole number
of hours (multiplied by 60); in responses it is `rpo_minutes / 60`: an integer when the RPO
is whole hours, else a fraction (15 minutes: 0.25), so a client that computes with it in
hours keeps judging the RPO exactly as the platform does. A request gives one of the two;
both are refused (400) unless they state the same RPO, as a resource read and sent back
unchanged does (a read-modify-write round trip must keep working).
"""

from __future__ import annotations

MINUTES_PER_HOUR = 60
DEFAULT_RPO_MINUTES = 24 * MINUTES_PER_HOUR
MAX_RPO_HOURS = 24 * 366
MAX_RPO_MINUTES = MAX_RPO_HOURS * MINUTES_PER_HOUR
BOTH_GIVEN_MESSAGE = "Give rpo_minutes or rpo_hours, not both (unless they state the same RPO)."


def hours_from_minutes(minutes: int) -> int | float:
    """`minutes` in hours: an int when whole, else a float rounded to 4 places (20 min: 0.3333)."""
    whole, rest = divmod(minutes, MINUTES_PER_HOUR)
    return whole if rest == 0 else round(minutes / MINUTES_PER_HOUR, 4)


def seconds_from_minutes(minutes: int) -> int:
    return minutes * 60


def same_rpo(minutes, hours) -> bool:
    """True when a request's `rpo_minutes` and `rpo_hours` state one RPO (or both are null)."""
    if minutes is None or hours is None:
        return minutes is None and hours is None
    if isinstance(minutes, bool) or isinstance(hours, bool) or not isinstance(minutes, int):
        return False
    return isinstance(hours, (int, float)) and hours == hours_from_minutes(minutes)



def describe_rpo(minutes: int) -> str:
    """For people: "24 h", "15 min", "1 h 30 min"."""
    hours, rest = divmod(minutes, MINUTES_PER_HOUR)
    if not rest:
        return f"{hours} h"
    return f"{hours} h {rest} min" if hours else f"{rest} min"
