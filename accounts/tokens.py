"""Creating, hashing and looking up API tokens.

Tokens look like `sbp_<43 url-safe characters>` (32 random bytes). Only the SHA-256 digest
is stored. A slow password hash (bcrypt, argon2) exists to make guessing *low-entropy*
secrets expensive; a 256-bit random token cannot be guessed whatever the hash, and a fast
hash lets every request be authenticated with one indexed lookup instead of 100 ms of CPU.
Bootstrap tokens chosen by an operator must be at least 16 characters (settings enforce it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ApiToken, TokenSource
from accounts.roles import Role
from accounts.scopes import UNSCOPED, TokenScope
from storage_platform.errors import BadRequest, Conflict

TOKEN_PREFIX = "sbp_"
TOKEN_RANDOM_BYTES = 32
DISPLAY_PREFIX_LENGTH = 8
MAX_EXPIRY_DAYS = 3660


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def display_prefix(plaintext: str) -> str:
    """The first characters, enough to recognise a token in a list, far too few to use it."""
    if plaintext.startswith(TOKEN_PREFIX):
        return plaintext[: len(TOKEN_PREFIX) + DISPLAY_PREFIX_LENGTH - 4]
    return plaintext[:4]


def find_token(plaintext: str) -> ApiToken | None:
    """The token whose secret is `plaintext`, whatever its state, or None.

    The lookup goes through the digest's unique index; the final comparison is constant
    time so the answer's timing does not depend on how much of a digest matched.
    """
    if not plaintext or len(plaintext) > 512:
        return None
    digest = hash_token(plaintext)
    token = ApiToken.objects.filter(secret_hash=digest).first()
    if token is None or not hmac.compare_digest(token.secret_hash, digest):
        return None
    return token


def expiry_from_days(days: int | None, now: datetime | None = None) -> datetime | None:
    if days is None:
        return None
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise BadRequest(f"expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}.", code="invalid_expiry")
    return (now or timezone.now()) + timedelta(days=days)


def create_token(name: str, role: str, *, expires_at: datetime | None = None,
                 source: str = TokenSource.API, created_by: str = "",
                 scope: TokenScope = UNSCOPED) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plaintext, which is never retrievable again.

    `scope` comes from `accounts.scopes.build_scope` (validated for `role`).

    Raises `Conflict` (code `token_name_taken`) when the name is used, even by a revoked token,
    so audit events naming a token stay unambiguous.
    """
    if role not in Role.values:
        raise BadRequest(f"role must be one of {', '.join(Role.values)}.", code="invalid_role")
    plaintext = generate_token()
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                name=name, role=role, prefix=display_prefix(plaintext), secret_hash=hash_token(plaintext),
                expires_at=expires_at, source=source, created_by=created_by,
                scope_volumes=list(scope.volumes), scope_label_selector=scope.label_selector,
                scope_verbs=list(scope.verbs),
            )
    except IntegrityError:
        raise Conflict(f"A token named '{name}' already exists.", code="token_name_taken",
                       detail={"name": name}) from None
    return token, plaintext
