"""The Volume: a directory of real data under a pool, with a quota, labels and a policy."""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from storage_platform.rpo import DEFAULT_RPO_MINUTES, MAX_RPO_MINUTES, MINUTES_PER_HOUR, hours_from_minutes

# RFC 1123 DNS label: lower-case letters, digits and '-', 1..63, no leading/trailing '-'.
# `\Z`, not `$`: Python's `$` also matches before a trailing newline, so "db-1\n" would pass.
DNS_LABEL_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z"
dns_label_validator = RegexValidator(
    DNS_LABEL_PATTERN,
    "Use 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit.",
    code="invalid_name",
)

MAX_SIZE_GB = 1_048_576  # 1 PiB: a sanity bound on the quota, not a pool limit


class VolumeStatus(models.TextChoices):
    CREATING = "creating"
    AVAILABLE = "available"
    RESTORING = "restoring"
    DELETING = "deleting"
    ERROR = "error"
    # Known from its backups (`manage.py rebuild_catalog`) but its data folder is not there:
    # neither backed up nor readable until a backup is restored into it (or it is deleted).
    DATA_MISSING = "data_missing", "Data missing"


class Volume(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=63, unique=True, validators=[dns_label_validator])
    size_gb = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SIZE_GB)],
        help_text="Quota in GiB; uploads beyond it are refused.",
    )
    status = models.CharField(max_length=16, choices=VolumeStatus.choices, default=VolumeStatus.CREATING)
    pool = models.CharField(max_length=63, default="default")
    # Empty for shared pools; the node name for node-local pools, so that backups and
    # restores are routed to a worker on that node (see docs/scaling.md).
    node = models.CharField(max_length=63, blank=True, default="")
    path = models.CharField(max_length=4096, blank=True, default="", help_text="Host path of the volume's data.")
    used_bytes = models.BigIntegerField(default=0)
    labels = models.JSONField(default=dict, blank=True)
    policy = models.ForeignKey(
        "backups.Policy", null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes"
    )
    # None: follow the policy's RPO. A number of minutes overrides it for this volume.
    rpo_minutes_override = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_RPO_MINUTES)],
        help_text="RPO of this volume in minutes; empty follows the policy.")
    status_message = models.CharField(max_length=1024, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def quota_bytes(self) -> int:
        return self.size_gb * 1024**3

    @property
    def rpo_minutes(self) -> int:
        """The effective recovery point objective in minutes (override, policy, or a day)."""
        if self.rpo_minutes_override is not None:
            return self.rpo_minutes_override
        if self.policy_id is not None and self.policy is not None:
            return self.policy.rpo_minutes
        return DEFAULT_RPO_MINUTES

    @property
    def rpo_hours(self) -> int | float:
        """`rpo_minutes` in hours, fractional below whole hours (storage_platform/rpo.py)."""
        return hours_from_minutes(self.rpo_minutes)

    @property
    def rpo_hours_override(self) -> int | float | None:
        """The override in hours; setting it (whole hours or None) sets `rpo_minutes_override`."""
        return None if self.rpo_minutes_override is None else hours_from_minutes(self.rpo_minutes_override)

    @rpo_hours_override.setter
    def rpo_hours_override(self, hours: int | None) -> None:
        self.rpo_minutes_override = None if hours is None else hours * MINUTES_PER_HOUR


class UploadReservation(models.Model):
    """Quota room held by one upload while its body streams in (rules in `volumes/reservations.py`).

    A row exists only while an upload is in progress. `owner_host`, `owner_namespace` (boot id
    and pid namespace, as in repository locks) and `owner_pid` name the API process streaming
    it, so a reservation whose process was killed can be recognised; `expires_at` bounds how
    long a reservation nobody renews can block room.
    """

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="upload_reservations")
    reserved_bytes = models.BigIntegerField(default=0)
    path = models.CharField(max_length=1024, blank=True, default="", help_text="The file being uploaded.")
    owner_host = models.CharField(max_length=255)
    owner_namespace = models.CharField(max_length=100, blank=True, default="")
    owner_pid = models.IntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.reserved_bytes} bytes of {self.volume_id} for {self.path!r}"
