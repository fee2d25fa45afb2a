"""Protection status of volumes: `ok`, `late` or `never`, one rule for every reader.

A volume is

* `never` when it has no completed backup (`backups.selectors`: a forgotten one does not count);
* `late` when its newest completed backup is older than its RPO (`Volume.rpo_minutes`: the
  override, else its policy's, else a day), compared to the second;
* `ok` otherwise.

This is the rule of the `backup_rpo_violation` metric (monitoring/collectors.py) for volumes
that have a backup; a volume that never had one is `never` here whatever its age, so the
admin can tell "not yet protected" from "protection lapsed". The admin's volume list, its
RPO filter and the overview on the admin index all read it from here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import models
from django.db.models import ExpressionWrapper, F, FloatField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from backups import selectors
from backups.models import Backup
from monitoring.catalog import EpochSeconds, VolumeRow, read_volumes
from storage_platform.rpo import DEFAULT_RPO_MINUTES, describe_rpo

__all__ = ["RpoStatus", "VolumeProtection", "all_volumes", "describe_rpo", "filter_by_status", "rpo_status",
           "with_protection"]


class RpoStatus(models.TextChoices):
    OK = "ok"
    LATE = "late"
    NEVER = "never"


def rpo_status(last_success: datetime.datetime | None, rpo_minutes: int, now: datetime.datetime) -> str:
    if last_success is None:
        return RpoStatus.NEVER
    return RpoStatus.LATE if now - last_success > datetime.timedelta(minutes=rpo_minutes) else RpoStatus.OK


@dataclass(frozen=True)
class VolumeProtection:
    """One volume's protection as the overview shows it."""

    id: str
    name: str
    status: str
    rpo_minutes: int
    last_success: datetime.datetime | None
    age: datetime.timedelta | None  # of the newest completed backup

    @property
    def rpo(self) -> str:
        return describe_rpo(self.rpo_minutes)


def protection_of(row: VolumeRow, now: datetime.datetime) -> VolumeProtection:
    last = None if row.last_success_ts is None else datetime.datetime.fromtimestamp(row.last_success_ts, datetime.UTC)
    return VolumeProtection(id=row.id, name=row.name, status=rpo_status(last, row.rpo_minutes, now),
                            rpo_minutes=row.rpo_minutes, last_success=last, age=None if last is None else now - last)


def all_volumes(now: datetime.datetime) -> list[VolumeProtection]:
    """Every volume with its protection, in one query (the metrics' volume query)."""
    return [protection_of(row, now) for row in read_volumes()]


# --- the same rule as queryset annotations (admin list column, sorting and filter) -------------
def with_protection(queryset):
    """Annotate volumes with `last_success_at` (newest completed backup), `last_backup_at` and
    `last_backup_status` (newest backup of any status) and `effective_rpo_minutes`."""
    newest_success = selectors.newest_completed_backups(volume=OuterRef("pk")).values("completed_at")[:1]
    newest = Backup.objects.filter(volume=OuterRef("pk")).order_by("-created_at")
    return queryset.annotate(
        last_success_at=Subquery(newest_success),
        last_backup_at=Subquery(newest.values("created_at")[:1]),
        last_backup_status=Subquery(newest.values("status")[:1]),
        effective_rpo_minutes=Coalesce(F("rpo_minutes_override"), F("policy__rpo_minutes"),
                                       Value(DEFAULT_RPO_MINUTES)),
    )


def filter_by_status(queryset, status: str, now: datetime.datetime):
    """Volumes (annotated by `with_protection`) whose protection is `status`."""
    if status == RpoStatus.NEVER:
        return queryset.filter(last_success_at__isnull=True)
    aged = queryset.filter(last_success_at__isnull=False).annotate(
        success_age_seconds=ExpressionWrapper(Value(now.timestamp()) - EpochSeconds("last_success_at"),
                                              output_field=FloatField()),
        rpo_seconds=ExpressionWrapper(F("effective_rpo_minutes") * 60.0, output_field=FloatField()),
    )
    if status == RpoStatus.LATE:
        return aged.filter(success_age_seconds__gt=F("rpo_seconds"))
    if status == RpoStatus.OK:
        return aged.filter(success_age_seconds__lte=F("rpo_seconds"))
    raise ValueError(f"unknown RPO status {status!r}")
