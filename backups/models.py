"""Catalog of backups: Policy, Job (every long operation) and Backup (one snapshot of a volume).

The engine's repository is the source of truth for data; these rows are the catalog that the
API, the scheduler and the metrics read. Celery messages carry only a Job id.
"""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from storage_platform.rpo import DEFAULT_RPO_MINUTES, MAX_RPO_MINUTES, MINUTES_PER_HOUR, hours_from_minutes

DEFAULT_SCHEDULE = "0 18 * * *"  # a daily backup at 18:00
# Three, not one: the newest good snapshot may hold data that was already wrong when it was
# read (ransomware, an application's bad write), which no verify can see.
DEFAULT_KEEP_GOOD = 3
MAX_KEEP_GOOD = 1000
# A weekly restore drill, Wednesdays at 04:00: away from the daily backups (18:00), prune
# (20:00) and verify (Sundays 03:00).
DEFAULT_DRILL_SCHEDULE = "0 4 * * 3"
# Replication to a second target: hourly at minute 30, when a policy names a target and no
# schedule (half an hour after an hourly backup tick, away from prune at 20:00 and verify).
DEFAULT_REPLICATION_SCHEDULE = "30 * * * *"
DEFAULT_RETENTION = {"keep_last": 7, "keep_daily": 14, "keep_weekly": 8, "keep_monthly": 12}


def default_retention() -> dict:
    return dict(DEFAULT_RETENTION)


class LockMode(models.TextChoices):
    """S3 Object Lock modes (backups/engine/objectlock.py)."""

    NONE = "", "none"
    GOVERNANCE = "governance"
    COMPLIANCE = "compliance"


MAX_LOCK_DAYS = 3650  # the engine's objectlock.MAX_DAYS


class Policy(models.Model):
    """When to back up, how long to keep, how often to verify; synced to django-celery-beat."""

    name = models.CharField(max_length=63, unique=True)
    description = models.CharField(max_length=512, blank=True, default="")
    enabled = models.BooleanField(default=True)
    schedule = models.CharField(max_length=128, default=DEFAULT_SCHEDULE, help_text="Cron: minute hour day month weekday.")
    timezone = models.CharField(max_length=64, default="UTC")
    retention = models.JSONField(default=default_retention, blank=True)
    # The truth of the RPO; `rpo_hours` below is the same value in hours (storage_platform/rpo.py).
    rpo_minutes = models.PositiveIntegerField(
        default=DEFAULT_RPO_MINUTES, validators=[MinValueValidator(1), MaxValueValidator(MAX_RPO_MINUTES)],
        help_text="Recovery point objective in minutes: a volume is late when its newest completed "
                  "backup is older than this.")
    verify_schedule = models.CharField(max_length=128, blank=True, default="0 3 * * 0")
    verify_percent = models.PositiveSmallIntegerField(default=10, validators=[MaxValueValidator(100)])
    prune_schedule = models.CharField(max_length=128, blank=True, default="0 20 * * *")
    # Retention never forgets a volume's newest `keep_good` good snapshots (verified or restored
    # intact since they were made: `backups/good_backups.py`), whatever `retention` says.
    keep_good = models.PositiveIntegerField(
        default=DEFAULT_KEEP_GOOD, validators=[MaxValueValidator(MAX_KEEP_GOOD)],
        help_text="Prune never forgets the newest this-many good snapshots of a volume (verified or "
                  "restored intact since they were made); 0 turns this off.")
    # Each run drills the newest backup of one volume of the policy, chosen at random; empty: never.
    drill_schedule = models.CharField(max_length=128, blank=True, default=DEFAULT_DRILL_SCHEDULE)
    # Replication: a target named in settings.REPLICATION_TARGETS (blank: none) and when its
    # replicate jobs run (blank: only on request). backups/replication_targets.py.
    replication_target = models.CharField(max_length=63, blank=True, default="",
                                          help_text="Name of a replication target (REPLICATION_TARGETS); empty: none.")
    replication_schedule = models.CharField(max_length=128, blank=True, default="",
                                            help_text="Cron for replicate jobs; empty: only on request.")
    is_default = models.BooleanField(default=False)
    # S3 Object Lock of every backup of the policy's volumes (docs/security.md, "Object Lock").
    lock_mode = models.CharField(
        max_length=16, blank=True, default="", choices=LockMode.choices,
        help_text="S3 Object Lock mode of each backup (governance or compliance); empty: no lock.")
    lock_days = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(MAX_LOCK_DAYS)],
        help_text="Days each backup stays locked (cannot be deleted, not even by an admin); 0: no lock.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"
        constraints = [
            # Volumes without a policy follow the default one: there must never be two.
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True),
                                    name="one_default_policy"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def rpo_hours(self) -> int | float:
        """`rpo_minutes` in hours (fractional below whole hours); setting it sets `rpo_minutes`."""
        return hours_from_minutes(self.rpo_minutes)

    @rpo_hours.setter
    def rpo_hours(self, hours: int) -> None:
        self.rpo_minutes = hours * MINUTES_PER_HOUR


class JobKind(models.TextChoices):
    BACKUP = "backup"
    RESTORE = "restore"
    VERIFY = "verify"
    PRUNE = "prune"
    DRILL = "drill"
    REPLICATE = "replicate"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED_JOB_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    """A long operation: state machine, progress, attempts, heartbeat, error; cancellable."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    queue = models.CharField(max_length=63, default="default")
    # The volume this job works on (backup source or restore target); it excludes other
    # backup/restore jobs of the same volume while active. Kept after the volume is deleted.
    volume = models.ForeignKey(
        "volumes.Volume", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="jobs",
    )
    policy = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    progress_message = models.CharField(max_length=256, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    worker = models.CharField(max_length=255, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    created_by = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A queued job waiting out a retry backoff: its Celery message is due at this time, so
    # a reconciler must not treat it as lost before then.
    run_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "kind"]),
            models.Index(fields=["volume", "status"]),
            models.Index(fields=["status", "-created_at"], name="job_status_newest"),
        ]
        constraints = [
            # One active backup or restore per volume across every API process and worker:
            # the database refuses a second one, so no race between two triggers can slip by.
            models.UniqueConstraint(
                fields=["volume"],
                condition=models.Q(status__in=["queued", "running"], kind__in=["backup", "restore"]),
                name="one_active_data_job_per_volume",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_JOB_STATUSES


class BackupStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BackupTrigger(models.TextChoices):
    MANUAL = "manual"  # operator in the admin or a CLI
    SCHEDULE = "schedule"  # beat / cron
    API = "api"  # a REST call


class Backup(models.Model):
    """One snapshot of one volume. Outlives its volume: `volume_id` and `volume_name` stay."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No database constraint and DO_NOTHING: deleting a volume keeps its backups, and
    # `volume_id` keeps naming the volume the data came from.
    volume = models.ForeignKey(
        "volumes.Volume", on_delete=models.DO_NOTHING, db_constraint=False, related_name="backups"
    )
    volume_name = models.CharField(max_length=63, db_index=True)
    status = models.CharField(max_length=16, choices=BackupStatus.choices, default=BackupStatus.QUEUED, db_index=True)
    trigger = models.CharField(max_length=16, choices=BackupTrigger.choices, default=BackupTrigger.API)
    job = models.OneToOneField(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="backup")
    snapshot_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    tags = models.JSONField(default=list, blank=True)
    # files, dirs, bytes_read, bytes_new, bytes_stored, duration_seconds, warnings
    stats = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set when retention (prune) removed the snapshot from the repository.
    forgotten_at = models.DateTimeField(null=True, blank=True)
    # The newest restore drill of this backup (whatever its status: the job is the record).
    # Written only by `services.start_drill`, when the drill is queued.
    last_drill = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Until when the snapshot is locked in the repository (S3 Object Lock); null: never locked.
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["volume", "status", "completed_at"]),
            # List pages (newest first) filtered by status or volume: an index range in list
            # order instead of sorting every matching row (bench/catalog_scale.py).
            models.Index(fields=["status", "-created_at"], name="backup_status_newest"),
            models.Index(fields=["volume", "-created_at"], name="backup_volume_newest"),
        ]

    def __str__(self) -> str:
        return f"backup {self.id} of {self.volume_name} ({self.status})"


class BackupReplica(models.Model):
    """A backup's snapshot is in the replica of a replication target (same snapshot id).

    Written only by `backups.replication` (the replicate runner): a row when a replicate job
    finds the snapshot in the replica (copied now or earlier), removed when a job finds it
    absent there (the replica followed the primary's retention, or was lost and started over).
    """

    backup = models.ForeignKey(Backup, on_delete=models.CASCADE, related_name="replicas")
    target = models.CharField(max_length=63)
    replicated_at = models.DateTimeField()

    class Meta:
        ordering = ["target"]
        constraints = [models.UniqueConstraint(fields=["backup", "target"], name="one_replica_per_target")]

    def __str__(self) -> str:
        return f"backup {self.backup_id} on {self.target}"


class PackVerification(models.Model):
    """One pack of the repository as the catalog knows it: its size, since when the catalog
    knows it, and when a verify job last read and authenticated it.

    Written only by `backups.pack_verification`: after a backup (the packs it wrote, never
    verified yet), after a verify job (every pack present, with the time for those read
    intact) and after a prune (rows of deleted packs go). A pack without a row, or with no
    `verified_at`, was never verified, and the next verify that reads data reads it
    (`engine.pack_selection`).
    """

    pack_id = models.CharField(max_length=128, primary_key=True)
    verified_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The verify job that read it last (no foreign key: jobs may be deleted, the time stays).
    job_id = models.UUIDField(null=True, blank=True)
    # Bytes in storage (0 for rows from before sizes were kept, until the next verify).
    size_bytes = models.BigIntegerField(default=0)
    # When the catalog first knew the pack: the re-verify window of a never-verified pack
    # runs from here (`backup_unverified_bytes`).
    first_seen_at = models.DateTimeField()

    def __str__(self) -> str:
        if self.verified_at is None:
            return f"pack {self.pack_id[:12]} never verified"
        return f"pack {self.pack_id[:12]} verified {self.verified_at:%Y-%m-%d %H:%M:%S}"


class PlatformRepositoryKey(models.Model):
    """The repository secret the platform stored at its latest key rotation, and the lease
    that lets one key operation run at a time. One row (id 1), owned by
    `backups.repository_secret`; the keys themselves are `keys/<id>` objects in the repository.

    The secret is sealed (AES-256-GCM under a key derived from `SECRET_KEY`), so a database
    dump alone does not open the repository (docs/security.md, "Repository keys").
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    key_id = models.CharField(max_length=64, blank=True, default="",
                              help_text="The key object (keys/<id>) the stored secret opens; empty: none stored.")
    sealed_secret = models.TextField(blank=True, default="")
    stored_at = models.DateTimeField(null=True, blank=True)
    stored_by = models.CharField(max_length=150, blank=True, default="")
    # The lease: who runs a key operation now, since when (a stale lease is taken over).
    operation = models.CharField(max_length=200, blank=True, default="")
    operation_started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "repository key"
        verbose_name_plural = "repository keys"

    def __str__(self) -> str:
        return f"stored repository secret for keys/{self.key_id}" if self.key_id else "no stored repository secret"
