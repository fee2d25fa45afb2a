"""API tokens and the audit log.

A token's secret is never stored: only its SHA-256 digest (see `accounts.tokens` for why a
fast hash is the right one here) and a short prefix so operators can tell tokens apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone

from accounts.roles import Role

# `last_used_at` is informational; writing it on every request would turn every read into a
# database write. Once a minute is precise enough to spot unused tokens.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenSource(models.TextChoices):
    ENV = "env", "environment (bootstrap)"
    API = "api", "API"
    ADMIN = "admin", "Django admin"
    CLI = "cli", "manage.py create_token"


class TokenState(models.TextChoices):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ApiToken(models.Model):
    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    prefix = models.CharField(max_length=16, help_text="First characters of the token, for display only.")
    secret_hash = models.CharField(max_length=64, unique=True, editable=False,
                                   help_text="SHA-256 of the token (hex); the token itself is never stored.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=8, choices=TokenSource.choices, default=TokenSource.API)
    created_by = models.CharField(max_length=150, blank=True, default="")
    # The scope (accounts.scopes): empty everywhere means unscoped, as every token created
    # before scopes existed and every environment or CLI token is.
    scope_volumes = models.JSONField(default=list, blank=True,
                                     help_text="Volume names, or prefixes ending in '*'; empty: any volume.")
    scope_label_selector = models.CharField(max_length=512, blank=True, default="",
                                            help_text="key=value,key2=value2; empty: any labels.")
    scope_verbs = models.JSONField(default=list, blank=True, help_text="Allowed verbs; empty: all the role allows.")

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"

    def state(self, now: datetime | None = None) -> str:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return TokenState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenState.EXPIRED
        return TokenState.ACTIVE

    def record_use(self, now: datetime | None = None) -> None:
        """Set `last_used_at`, writing at most once per `LAST_USED_RESOLUTION`."""
        now = now or timezone.now()
        if self.last_used_at is not None and now - self.last_used_at < LAST_USED_RESOLUTION:
            return
        # A conditional UPDATE, so concurrent requests of the same token write once, and a
        # request never overwrites other fields (a concurrent revoke) with stale values.
        ApiToken.objects.filter(pk=self.pk).filter(
            models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        self.last_used_at = now

    def revoke(self, now: datetime | None = None) -> bool:
        """Revoke the token; returns False when it was already revoked (idempotent)."""
        if self.revoked_at is not None:
            return False
        self.revoked_at = now or timezone.now()
        ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=self.revoked_at)
        return True


class AuditResult(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"


class AuditEvent(models.Model):
    """One mutating API request: who, what, on which target, with which result.

    Never holds a token or a request body: only names, ids and status codes.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, db_index=True,
                             help_text="Token name, user name, or 'anonymous'.")
    actor_type = models.CharField(max_length=16, help_text="token, user or anonymous")
    role = models.CharField(max_length=16, blank=True, default="")
    token_scope = models.CharField(max_length=700, blank=True, default="",
                                   help_text="The calling token's scope, empty when unscoped.")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=512)
    action = models.CharField(max_length=150, help_text="Route name and, for view sets, the action.")
    target_type = models.CharField(max_length=64, blank=True, default="", db_index=True)
    target_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    status_code = models.PositiveSmallIntegerField()
    result = models.CharField(max_length=8, choices=AuditResult.choices, db_index=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.method} {self.action} {self.status_code}"
