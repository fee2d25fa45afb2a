"""Reads of the backup catalog that several modules ask the same question of.

Services write; selectors read (one definition per question, so its rules are decided once).

The rule for "completed": a backup protects its volume when its status is `completed`, it
has a snapshot id and a completion time, and it has not been forgotten (`forgotten_at` is
set when retention or a delete removed its snapshot from the repository). A forgotten backup
does not count as protection: it is not the parent of the next backup, it cannot be restored
or browsed, it is not the volume's `last_backup`, and it does not keep the RPO met.
"""

from __future__ import annotations

from django.db.models import QuerySet

from backups.models import ACTIVE_JOB_STATUSES, Backup, BackupStatus, Job, JobKind

DATA_JOB_KINDS = (JobKind.BACKUP, JobKind.RESTORE)


def completed_backups(**filters) -> QuerySet:
    """Backups that protect their volume (see the module docstring), filtered by `filters`
    (e.g. `volume_id=...`, or `volume=OuterRef("pk")` in a subquery)."""
    return (Backup.objects.filter(status=BackupStatus.COMPLETED, forgotten_at__isnull=True,
                                  completed_at__isnull=False, **filters)
            .exclude(snapshot_id=""))


def newest_completed_backups(**filters) -> QuerySet:
    """`completed_backups(**filters)`, newest first (by completion, then creation). Served by
    the (volume, status, completed_at) index of Backup."""
    return completed_backups(**filters).order_by("-completed_at", "-created_at")


def newest_completed_backup(volume_id, *, exclude=None) -> Backup | None:
    """The newest backup protecting the volume `volume_id` (other than the backup `exclude`)."""
    queryset = newest_completed_backups(volume_id=volume_id)
    if exclude is not None:
        queryset = queryset.exclude(pk=exclude)
    return queryset.first()


def is_completed(backup: Backup) -> bool:
    """The same rule as `completed_backups`, for a row already read."""
    return (backup.status == BackupStatus.COMPLETED and bool(backup.snapshot_id)
            and backup.forgotten_at is None and backup.completed_at is not None)


def active_data_job(volume_id) -> Job | None:
    """The queued or running backup or restore of the volume, if any (at most one exists:
    the `one_active_data_job_per_volume` constraint)."""
    return Job.objects.filter(volume_id=volume_id, kind__in=DATA_JOB_KINDS, status__in=ACTIVE_JOB_STATUSES).first()


def oldest_active_job(volume_id) -> Job | None:
    """The volume's oldest queued or running job that uses the volume's data, if any: any kind
    but a drill, which records the volume it drills a backup of but reads only the repository."""
    return (Job.objects.filter(volume_id=volume_id, status__in=ACTIVE_JOB_STATUSES).exclude(kind=JobKind.DRILL)
            .order_by("created_at").first())


def active_drill(backup: Backup) -> Job | None:
    """The backup's queued or running restore drill, if any (its newest drill, `last_drill`,
    which `services.start_drill` sets on every drill it queues)."""
    newest = Backup.objects.filter(pk=backup.pk).values("last_drill_id")  # as stored now, not as read
    return Job.objects.filter(pk__in=newest, status__in=ACTIVE_JOB_STATUSES).first()
