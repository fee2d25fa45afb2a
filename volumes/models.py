"""The Volume: a directory of real data under a pool, with a quota, labels and a policy."""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

# RFC 1123 DNS label: lower-case letters, digits and '-', 1..63, no leading/trailing '-'.
DNS_LABEL_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
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
    # None: follow the policy's RPO. A number overrides it for this volume.
    rpo_hours_override = models.PositiveIntegerField(null=True, blank=True)
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
    def rpo_hours(self) -> int:
        """The effective recovery point objective in hours (override, policy, or 24)."""
        if self.rpo_hours_override is not None:
            return self.rpo_hours_override
        if self.policy_id is not None and self.policy is not None:
            return self.policy.rpo_hours
        return 24
