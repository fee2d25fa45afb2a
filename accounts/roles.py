"""Roles of API tokens. Each role includes the ones before it: read < backup < admin."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    READ = "read", "read"
    BACKUP = "backup", "backup"
    ADMIN = "admin", "admin"


ROLE_RANK = {Role.READ: 1, Role.BACKUP: 2, Role.ADMIN: 3}


def role_allows(held: str | None, required: str) -> bool:
    """True when a principal holding `held` may do what needs `required`."""
    return held is not None and ROLE_RANK.get(held, 0) >= ROLE_RANK[required]
