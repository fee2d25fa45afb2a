"""The catalog's memory of the repository's packs: their sizes and when a verify last read them.

Rows are written at three moments:

* after a backup, `register_written(...)` adds the packs it wrote, never verified yet;
* after a verify, `record(...)` stores the verify's start time for each pack it read and
  found intact, adds the packs it found that the catalog did not know (packs a prune
  rewrote), and drops the rows of packs no longer in the repository;
* after a prune, `forget_absent(...)` drops the rows of the packs it deleted.

A verify job that reads data asks `selection(percent)` which packs to read: every pack never
verified, every pack that would otherwise go longer than `VERIFY_REVERIFY_DAYS` without a
read before the next scheduled verify, then the longest-unverified ones up to `percent` of
all packs (`engine.pack_selection.unverified_first`, `reverify_plan`). Damaged packs keep
their old time (or none), so they are read again by the next verify until someone repairs
them, and they count in `unverified_bytes` once their window has passed.

Times written are the verify's *start*: every pack it read was read after it, so the window
is never measured from later than the real read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from backups.engine.pack_selection import unverified_first
from backups.models import PackVerification, Policy

# Rows per statement: keeps each INSERT/DELETE under SQLite's bound-parameter limit.
BATCH = 500
# A verify reads the packs whose window ends before the next scheduled verify *plus this*:
# that verify may start late or read for hours, and its packs must still be read in time.
EARLY = timedelta(days=1)


def reverify_window() -> timedelta:
    """`VERIFY_REVERIFY_DAYS`: the longest a pack may go without being read by a verify."""
    return timedelta(days=settings.VERIFY_REVERIFY_DAYS)


def verified_times() -> dict[str, datetime]:
    """{pack id: last verified} for every pack the catalog knows as verified."""
    rows = PackVerification.objects.filter(verified_at__isnull=False).values_list("pack_id", "verified_at")
    return dict(rows.iterator(chunk_size=5000))


def next_data_verify(after: datetime) -> datetime | None:
    """The next scheduled run, after `after`, of a verify that reads data (an enabled policy
    with a verify schedule and `verify_percent` > 0), or None when no policy schedules one."""
    from backups.scheduling import cron

    runs = []
    for expression, zone in (Policy.objects.filter(enabled=True, verify_percent__gt=0).exclude(verify_schedule="")
                             .values_list("verify_schedule", "timezone")):
        try:
            runs.append(cron.next_run(cron.parse(expression, zone), after))
        except cron.InvalidSchedule:
            continue  # beat does not run it either
    return min(runs, default=None)


@dataclass(frozen=True)
class ReverifyPlan:
    """What a verify starting at `now` must read on top of its percentage.

    `due_before`: every pack last verified at or before it is read, so that none is older
    than the window when the next scheduled data verify (`next_verify`) has run.
    `least_percent`: the share of all packs the window asks of each run (the interval to the
    next verify over the window), so the reading spreads evenly over the window instead of
    every pack read by one verify coming due again on the same day.
    """

    due_before: datetime
    least_percent: float
    next_verify: datetime | None


def reverify_plan(now: datetime, *, next_verify: datetime | None = None) -> ReverifyPlan:
    window = reverify_window()
    if next_verify is None:
        next_verify = next_data_verify(now)
    if next_verify is None:  # no schedule: read what is due now (the metric shows the rest)
        return ReverifyPlan(due_before=now + EARLY - window, least_percent=0.0, next_verify=None)
    share = 100.0 * (next_verify - now) / window
    return ReverifyPlan(due_before=next_verify + EARLY - window, least_percent=min(100.0, max(0.0, share)),
                        next_verify=next_verify)


class Selection:
    """The `select` callable handed to the engine's verify; remembers the packs it was offered."""

    def __init__(self, percent: float, verified: dict[str, datetime] | None = None, *,
                 plan: ReverifyPlan | None = None):
        self.percent = float(percent)
        self.verified = verified_times() if verified is None else verified
        self.plan = plan
        self.offered: list[str] = []
        self.chosen: list[str] = []

    @property
    def effective_percent(self) -> float:
        return max(self.percent, self.plan.least_percent) if self.plan else self.percent

    def __call__(self, pack_ids: list[str]) -> list[str]:
        self.offered = list(pack_ids)
        self.chosen = unverified_first(pack_ids, self.verified, self.effective_percent,
                                       due_before=self.plan.due_before if self.plan else None)
        return self.chosen

    def summary(self) -> dict:
        """What the job result says about the choice (JSON)."""
        summary = {"pack_selection": "unverified_first", "packs_offered": len(self.offered),
                   "packs_chosen": len(self.chosen), "percent_read": round(self.effective_percent, 3)}
        if self.plan is not None:
            summary["reverify"] = {
                "days": settings.VERIFY_REVERIFY_DAYS, "due_before": self.plan.due_before.isoformat(),
                "next_verify": self.plan.next_verify.isoformat() if self.plan.next_verify else None,
                "least_percent": round(self.plan.least_percent, 3),
            }
        return summary


def selection(percent: float, *, now: datetime | None = None) -> Selection:
    return Selection(percent, plan=reverify_plan(now or timezone.now()))


def register_written(packs: Mapping[str, int], *, at: datetime | None = None) -> int:
    """Add the packs a backup wrote ({pack id: bytes}) as known and never verified; packs the
    catalog already knows are left as they are. Answers the number of packs given."""
    at = at or timezone.now()
    items = sorted(packs.items())
    for start in range(0, len(items), BATCH):
        PackVerification.objects.bulk_create(
            [PackVerification(pack_id=pack_id, size_bytes=int(size), first_seen_at=at)
             for pack_id, size in items[start:start + BATCH]],
            ignore_conflicts=True,
        )
    return len(items)


def forget_absent(present: Iterable[str], *, listed_at: datetime) -> int:
    """Drop the rows of packs missing from `present` (a listing of the repository taken at or
    after `listed_at`). Rows first seen after `listed_at` stay: a backup may have written and
    registered them after the listing. Answers the number of rows dropped."""
    present = set(present)
    known = PackVerification.objects.filter(first_seen_at__lte=listed_at).values_list("pack_id", flat=True)
    gone = sorted(set(known.iterator(chunk_size=5000)) - present)
    for start in range(0, len(gone), BATCH):
        PackVerification.objects.filter(pack_id__in=gone[start:start + BATCH]).delete()
    return len(gone)


def record(read: Iterable[str], damaged: Iterable[str], *, offered: Iterable[str] | None = None,
           sizes: Mapping[str, int] | None = None, job_id=None, at: datetime | None = None) -> int:
    """Store `at` (the verify's start) as the verified time of every pack in `read` but not
    in `damaged`; with `offered` (every pack present in the repository when the verify
    listed it), add the packs the catalog did not know and forget those no longer there.
    `sizes` ({pack id: bytes}) fills in sizes. Answers the number of packs recorded as verified."""
    at = at or timezone.now()
    sizes = sizes or {}
    intact = sorted(set(read) - set(damaged))
    with transaction.atomic():
        for start in range(0, len(intact), BATCH):
            PackVerification.objects.bulk_create(
                [PackVerification(pack_id=pack_id, verified_at=at, job_id=job_id, size_bytes=sizes.get(pack_id, 0),
                                  first_seen_at=at) for pack_id in intact[start:start + BATCH]],
                update_conflicts=True, unique_fields=["pack_id"],
                update_fields=["verified_at", "job_id", *(["size_bytes"] if sizes else [])],
            )
        if offered is not None:
            offered = set(offered)
            known = dict(PackVerification.objects.values_list("pack_id", "size_bytes").iterator(chunk_size=5000))
            register_written({pack_id: sizes.get(pack_id, 0) for pack_id in offered - set(known)}, at=at)
            # Rows kept from before sizes were recorded learn theirs from this verify's listing.
            unsized = sorted(pack_id for pack_id in offered if known.get(pack_id) == 0 and sizes.get(pack_id))
            for start in range(0, len(unsized), BATCH):
                PackVerification.objects.bulk_update(
                    [PackVerification(pack_id=pack_id, size_bytes=sizes[pack_id]) for pack_id in unsized[start:start + BATCH]],
                    ["size_bytes"])
            forget_absent(offered, listed_at=at)
    return len(intact)


@dataclass(frozen=True)
class UnverifiedBytes:
    """Bytes of packs no verify has read within the window, split by whether it has passed.

    `pending`: never verified, known for less than the window (new data awaiting its first
    verify). `overdue`: last verified longer ago than the window, or never verified and
    known for longer than it.
    """

    pending: int
    overdue: int


def unverified_bytes(now: datetime) -> UnverifiedBytes:
    """One aggregate query over the catalog's packs (see `UnverifiedBytes`)."""
    cutoff = now - reverify_window()
    never = Q(verified_at__isnull=True)
    totals = PackVerification.objects.aggregate(
        pending=Sum("size_bytes", filter=never & Q(first_seen_at__gte=cutoff)),
        overdue=Sum("size_bytes", filter=Q(verified_at__lt=cutoff) | (never & Q(first_seen_at__lt=cutoff))),
    )
    return UnverifiedBytes(pending=int(totals["pending"] or 0), overdue=int(totals["overdue"] or 0))
