"""Which secret the platform opens the repository with, and the secret a rotation stores.

The operator's secret is `REPOSITORY_KEY` (or `REPOSITORY_KEY_FILE`). A rotation through the
API or the admin (`backups.repository_keys`) removes the key that secret opened, so it stores
the new secret here, in the database (`PlatformRepositoryKey`, one row), where every process
that opens the repository afterwards finds it: a new worker, a restarted API process, another
host. Processes that are already running need nothing: a rotation wraps the same master key
again, and they hold it unwrapped.

`candidate_secrets()` gives the order in which secrets are tried (docs/security.md,
"Repository keys"): `REPOSITORY_KEY` first, because what the operator configured wins (after
the new secret was copied into the secret file, or after a rotation done by hand); then the
stored secret. After an API rotation the first fails and the second opens.

Sealing: AES-256-GCM under HKDF-SHA256(`SECRET_KEY`, info `storage-platform stored repository
secret v1`), with the key id as associated data, so a sealed secret cannot be moved to another
row or key. Stored as `v1.` + base64url(nonce | ciphertext | tag). A database dump alone
therefore opens nothing; `SECRET_KEY_FALLBACKS` are tried when unsealing, so a `SECRET_KEY`
rotated the Django way keeps the secret readable (the next key rotation seals it again under
the new `SECRET_KEY`).

This module is the only writer of `PlatformRepositoryKey`, including its lease: one key
operation at a time across every process (`key_operation`), taken with a conditional UPDATE
like a job claim, so no database transaction stays open while storage is written.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from backups.models import PlatformRepositoryKey
from storage_platform.errors import Conflict
from storage_platform.logging import remember_secret

log = logging.getLogger(__name__)

SEALED_VERSION = "v1"
_SEALING_INFO = b"storage-platform stored repository secret v1"
_NONCE_SIZE = 12
#: A key operation is a handful of small storage requests; a lease older than this belongs
#: to a process that died half-way, and the next operation takes it over.
LEASE_SECONDS = 600

ENVIRONMENT = "environment"
STORED = "platform"


class KeyOperationInProgress(Conflict):
    """Another repository key operation is running; try again when it has finished."""

    code = "key_operation_in_progress"


@dataclass(frozen=True)
class SecretCandidate:
    """A secret the platform may open the repository with, and where it comes from
    (`environment`: REPOSITORY_KEY; `platform`: stored by a rotation). repr hides it."""

    source: str
    secret: str = field(repr=False)
    #: The key object a stored secret was made for ("" for REPOSITORY_KEY: not known).
    key_id: str = ""


def _sealing_key(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=_SEALING_INFO).derive(secret_key.encode("utf-8"))


def seal(secret: str, key_id: str) -> str:
    nonce = os.urandom(_NONCE_SIZE)
    sealed = AESGCM(_sealing_key(settings.SECRET_KEY)).encrypt(nonce, secret.encode("utf-8"),
                                                               key_id.encode("ascii"))
    return f"{SEALED_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"


def unseal(sealed: str, key_id: str) -> str | None:
    """The stored secret, or None when no current or fallback `SECRET_KEY` opens it."""
    version, _, payload = sealed.partition(".")
    if version != SEALED_VERSION:
        log.error("the stored repository secret has an unknown format %r; ignoring it", version[:8])
        return None
    try:
        raw = base64.urlsafe_b64decode(payload.encode("ascii"))
    except ValueError:
        log.error("the stored repository secret is not readable; ignoring it")
        return None
    for secret_key in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        try:
            plain = AESGCM(_sealing_key(secret_key)).decrypt(raw[:_NONCE_SIZE], raw[_NONCE_SIZE:],
                                                             key_id.encode("ascii"))
        except (InvalidTag, ValueError):
            continue
        return plain.decode("utf-8")
    return None


def stored_secret(*, quiet: bool = False) -> SecretCandidate | None:
    """The secret the latest rotation stored, unsealed; None when there is none, or when it
    cannot be unsealed (logged unless `quiet`: a metrics scrape asks every few seconds)."""
    row = PlatformRepositoryKey.objects.filter(pk=PlatformRepositoryKey.SINGLETON_ID).exclude(key_id="").first()
    if row is None or not row.sealed_secret:
        return None
    secret = unseal(row.sealed_secret, row.key_id)
    if secret is None:
        if not quiet:
            log.error("the stored repository secret for keys/%s cannot be unsealed with SECRET_KEY or "
                      "SECRET_KEY_FALLBACKS (was SECRET_KEY changed?); only REPOSITORY_KEY is tried", row.key_id)
        return None
    remember_secret(secret)
    return SecretCandidate(STORED, secret, row.key_id)


def secret_file_is_outdated() -> bool:
    """True when the latest rotation stored a secret that this process's REPOSITORY_KEY does
    not hold: the platform runs on the stored secret, and the secret file (and the offline
    copy made from it) predates the rotation. Reads the database only, never the storage."""
    stored = stored_secret(quiet=True)
    return stored is not None and stored.secret != settings.REPOSITORY_KEY


def candidate_secrets() -> Iterator[SecretCandidate]:
    """The secrets to open the repository with, in order: REPOSITORY_KEY, then the stored one.

    Lazily: while REPOSITORY_KEY opens the repository, the database is not asked."""
    if settings.REPOSITORY_KEY:
        yield SecretCandidate(ENVIRONMENT, str(settings.REPOSITORY_KEY))
    stored = stored_secret()
    if stored is not None and stored.secret != settings.REPOSITORY_KEY:
        yield stored


def _row() -> None:
    """Make sure the one row exists (several processes may create it at once)."""
    if PlatformRepositoryKey.objects.filter(pk=PlatformRepositoryKey.SINGLETON_ID).exists():
        return
    try:
        with transaction.atomic():
            PlatformRepositoryKey.objects.create(pk=PlatformRepositoryKey.SINGLETON_ID)
    except IntegrityError:
        pass  # another process created it first


def store_secret(secret: str, key_id: str, *, actor: str) -> None:
    """Make `secret` (which opens `keys/<key_id>`) the platform's stored secret. From the
    commit on, every process that opens the repository anew can use it."""
    _row()
    PlatformRepositoryKey.objects.filter(pk=PlatformRepositoryKey.SINGLETON_ID).update(
        key_id=key_id, sealed_secret=seal(secret, key_id), stored_at=timezone.now(), stored_by=actor[:150])


def forget_stored_secret(key_id: str | None = None) -> bool:
    """Drop the stored secret (only if it is the one for `key_id`, when given): its key was
    removed, or a new repository was created. True when one was dropped."""
    rows = PlatformRepositoryKey.objects.filter(pk=PlatformRepositoryKey.SINGLETON_ID).exclude(key_id="")
    if key_id is not None:
        rows = rows.filter(key_id=key_id)
    return rows.update(key_id="", sealed_secret="", stored_at=None, stored_by="") > 0


@contextmanager
def key_operation(description: str, now=timezone.now):
    """Run the body as the only key operation of the platform; `KeyOperationInProgress` (409)
    when another one holds the lease. A lease older than `LEASE_SECONDS` is taken over."""
    _row()
    started = now()
    holder = f"{description[:180]} [{uuid.uuid4().hex[:8]}]"
    stale = started - dt.timedelta(seconds=LEASE_SECONDS)
    claimed = PlatformRepositoryKey.objects.filter(pk=PlatformRepositoryKey.SINGLETON_ID).filter(
        Q(operation="") | Q(operation_started_at__lt=stale)).update(operation=holder, operation_started_at=started)
    if not claimed:
        running = PlatformRepositoryKey.objects.filter(pk=PlatformRepositoryKey.SINGLETON_ID).values(
            "operation", "operation_started_at").first() or {}
        since = running.get("operation_started_at")
        raise KeyOperationInProgress(detail={"operation": running.get("operation", ""),
                                             "started_at": since.isoformat() if since else None})
    try:
        yield
    finally:
        PlatformRepositoryKey.objects.filter(pk=PlatformRepositoryKey.SINGLETON_ID, operation=holder).update(
            operation="", operation_started_at=None)
