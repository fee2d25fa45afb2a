"""The catalog's memory of verified packs: read by verify jobs, written after them.

A verify job that reads data asks `selection(percent)` which packs to read: every pack never
verified, then the longest-unverified ones up to `percent` of all packs
(`engine.pack_selection.unverified_first`). After the engine's report, `record(...)` stores
the time for each pack that was read and found intact, and drops the rows of packs that are
no longer in the repository (pruned). Damaged packs keep their old time (or none), so they are
read again by the next verify until someone repairs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from backups.engine.pack_selection import unverified_first
from backups.models import PackVerification

# Rows per statement: keeps each INSERT/DELETE under SQLite's bound-parameter limit.
BATCH = 500


def verified_times() -> dict[str, datetime]:
    """{pack id: last verified} for every pack the catalog knows as verified."""
    return dict(PackVerification.objects.values_list("pack_id", "verified_at").iterator(chunk_size=5000))


def last_verified_at() -> datetime | None:
    newest = PackVerification.objects.order_by("-verified_at").values_list("verified_at", flat=True).first()
    return newest


class Selection:
    """The `select` callable handed to the engine's verify; remembers the packs it was offered."""

    def __init__(self, percent: float, verified: dict[str, datetime] | None = None):
        self.percent = float(percent)
        self.verified = verified_times() if verified is None else verified
        self.offered: list[str] = []

    def __call__(self, pack_ids: list[str]) -> list[str]:
        self.offered = list(pack_ids)
        return unverified_first(pack_ids, self.verified, self.percent)


def selection(percent: float) -> Selection:
    return Selection(percent)


def record(read: Iterable[str], damaged: Iterable[str], *, offered: Iterable[str] | None = None,
           job_id=None, at: datetime | None = None) -> int:
    """Store `at` as the verified time of every pack in `read` but not in `damaged`; with
    `offered` (every pack present in the repository), forget the packs no longer there.
    Answers the number of packs recorded as verified."""
    at = at or timezone.now()
    intact = sorted(set(read) - set(damaged))
    with transaction.atomic():
        for start in range(0, len(intact), BATCH):
            PackVerification.objects.bulk_create(
                [PackVerification(pack_id=pack_id, verified_at=at, job_id=job_id) for pack_id in intact[start:start + BATCH]],
                update_conflicts=True, unique_fields=["pack_id"], update_fields=["verified_at", "job_id"],
            )
        if offered is not None:
            gone = sorted(set(PackVerification.objects.values_list("pack_id", flat=True)) - set(offered))
            for start in range(0, len(gone), BATCH):
                PackVerification.objects.filter(pack_id__in=gone[start:start + BATCH]).delete()
    return len(intact)
