"""Bootstrap tokens from the environment (`ADMIN_TOKEN`, `BACKUP_TOKEN`, `READ_TOKEN` or
their `*_FILE` variants, read into `settings.BOOTSTRAP_TOKENS`).

Each becomes the token `env-<role>`. Sync is idempotent:
* a value that is set and not yet stored creates the token, or rotates it (new hash,
  active again even if the old one was revoked);
* a value that is unset revokes `env-<role>` if it exists;
* an unchanged value writes nothing;
* **a revoked secret is never revived**: when `env-<role>` was revoked (`DELETE
  /api/v1/tokens/{id}`, the admin action, or unsetting the variable) and the variable still
  holds that same secret, the token stays revoked and one warning line says how to bring
  it back (set a new value). Revoking a stolen environment token must hold across restarts
  and new worker processes without first redeploying the environment.

It runs after every `migrate` (post_migrate), from `manage.py bootstrap_tokens`, and once per
process before the first token authentication, so an API restarted with new environment
values honours them even if nobody ran `migrate`.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts.models import ApiToken, TokenSource
from accounts.tokens import display_prefix, hash_token

logger = logging.getLogger(__name__)

_synced = False
_lock = threading.Lock()


def bootstrap_name(role: str) -> str:
    return f"env-{role}"


def sync_bootstrap_tokens(tokens: dict[str, str | None] | None = None) -> dict[str, str]:
    """Bring the `env-*` tokens in line with `tokens` (role -> plaintext or None).

    Returns role -> what happened (`created`, `rotated`, `unchanged`, `revoked`, `absent`,
    `stays_revoked`, `conflict`), for the management command's output. Never logs a token value.
    """
    tokens = settings.BOOTSTRAP_TOKENS if tokens is None else tokens
    outcome = {}
    now = timezone.now()
    with transaction.atomic():
        for role, plaintext in tokens.items():
            name = bootstrap_name(role)
            existing = ApiToken.objects.select_for_update().filter(name=name).first()
            if plaintext is None:
                if existing is not None and existing.source == TokenSource.ENV and existing.revoked_at is None:
                    existing.revoked_at = now
                    existing.save(update_fields=["revoked_at"])
                    outcome[role] = "revoked"
                else:
                    outcome[role] = "absent"
                continue
            digest = hash_token(plaintext)
            if existing is None:
                # The same secret may already belong to another token (an operator reused
                # it); the unique hash index would refuse it, so say so instead.
                if ApiToken.objects.filter(secret_hash=digest).exists():
                    logger.warning("%s_TOKEN equals an existing token's secret; not bootstrapped", role.upper())
                    outcome[role] = "conflict"
                    continue
                ApiToken.objects.create(name=name, role=role, prefix=display_prefix(plaintext),
                                        secret_hash=digest, source=TokenSource.ENV, created_by="environment")
                outcome[role] = "created"
            elif existing.revoked_at is not None and existing.secret_hash == digest:
                logger.warning("bootstrap tokens: %s stays revoked (revoked %s); %s_TOKEN still holds the revoked "
                               "secret: set a new value to re-enable it", name,
                               existing.revoked_at.isoformat(timespec="seconds"), role.upper())
                outcome[role] = "stays_revoked"
            elif existing.secret_hash != digest or existing.role != role:
                existing.secret_hash = digest
                existing.prefix = display_prefix(plaintext)
                existing.role = role
                existing.revoked_at = None
                existing.expires_at = None
                existing.source = TokenSource.ENV
                existing.save(update_fields=["secret_hash", "prefix", "role", "revoked_at", "expires_at", "source"])
                outcome[role] = "rotated"
            else:
                outcome[role] = "unchanged"
    changed = {role: what for role, what in outcome.items() if what not in ("unchanged", "absent", "stays_revoked")}
    if changed:
        logger.info("bootstrap tokens: %s", ", ".join(f"{bootstrap_name(r)} {w}" for r, w in sorted(changed.items())))
    return outcome


def sync_bootstrap_tokens_once() -> None:
    """Sync once per process; a database not migrated yet is not an error here."""
    global _synced
    if _synced:
        return
    with _lock:
        if _synced:
            return
        try:
            sync_bootstrap_tokens()
        except DatabaseError:
            logger.warning("bootstrap tokens not synced: database not ready")
            return
        _synced = True


def reset_sync_state() -> None:
    """For tests: make the next authentication sync again."""
    global _synced
    _synced = False
