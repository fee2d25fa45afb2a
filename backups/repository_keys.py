"""The repository's keys as the platform manages them: list, add, remove, rotate.

The API (`/api/v1/repository-keys`, admin role) and the admin's "Repository keys" page call
these and nothing else. A key is a `keys/<id>` object in the repository: the one master key
wrapped under one secret (docs/repository-format.md, "Keys"). Adding or removing one writes
or deletes that object; no data is ever rewritten.

* Secrets are generated here (32 random bytes as 64 hex digits: HKDF, so opening the
  repository with one costs nothing) and handed back once, to the caller that asked for them.
  Nothing here logs or stores one, except the secret a rotation switches the platform to,
  which `backups.repository_secret` stores sealed.
* Every operation opens the repository anew (`storage.reopen_repository`), so "the key in
  use" is the key the platform's secrets open now, as a process starting now would see it.
* Changes run one at a time across every process (`repository_secret.key_operation`: 409
  `key_operation_in_progress` otherwise): a key removed while a rotation switches to it
  would leave the platform with a secret that opens nothing.
* They run synchronously, not as jobs: each is a few small object reads and writes (like
  deleting a backup), there is no progress to report, and a generated secret must reach
  the caller in the answer itself: a job's result is stored in the catalog, which every
  read token can see.
* Every change is logged with key ids (not secrets; an id is a hash of the wrapped key
  object); the audit log records who did it (`AuditMiddleware`, `record_admin_action`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass, field

from backups import repository_secret, storage
from backups.engine.errors import EngineError, KeyInUse, KeyNotFound, LastKey, OrphanKey
from backups.engine.repository import Repository
from storage_platform.errors import Conflict, NotFound
from storage_platform.logging import remember_secret

log = logging.getLogger(__name__)

KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")
KEY_PREFIX = "keys/"
ORPHAN_RUNBOOK = "docs/runbook.md, \"Objects sealed with an orphan key\""


class RepositoryKeyNotFound(NotFound):
    """The repository has no such key."""

    code = "key_not_found"


class RepositoryKeyRefused(Conflict):
    """The key cannot be removed."""


class OrphanKeysPresent(Conflict):
    """The repository has orphan keys: repair them before rotating."""

    code = "orphan_keys_present"


@dataclass(frozen=True)
class RepositoryKey:
    """One key object as the API shows it: never any key material."""

    id: str
    created: dt.datetime | None
    kdf: str
    #: The key the platform's secrets open now (what a process starting now would use).
    in_use: bool
    #: Unwraps with the platform's secret but does not open the config (see the runbook).
    orphan: bool
    #: For the key in use: `environment` (REPOSITORY_KEY) or `platform` (stored by a rotation).
    secret_source: str | None = None


@dataclass(frozen=True)
class NewRepositoryKey:
    """A key just added, with its secret: shown once, to the caller, and never again."""

    key: RepositoryKey
    secret: str = field(repr=False)
    #: Rotation: the key that was in use before and was removed (None if it could not be).
    removed_key: str | None = None
    #: Rotation: why the old key was not removed (the new key is in use all the same).
    removal_error: str = ""


def _key_id(name: str) -> str:
    return name[len(KEY_PREFIX):] if name.startswith(KEY_PREFIX) else name


def _created(value) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _describe(entry: dict, *, in_use_name: str, secret_source: str) -> RepositoryKey:
    in_use = entry["name"] == in_use_name
    return RepositoryKey(id=_key_id(entry["name"]), created=_created(entry.get("created")),
                         kdf=entry.get("kdf") or "", in_use=in_use, orphan=bool(entry.get("orphan")),
                         secret_source=secret_source if in_use else None)


def _new_secret() -> str:
    secret = secrets.token_hex(32)
    remember_secret(secret)
    return secret


def _described_key(repository, name: str, *, secret_source: str | None) -> RepositoryKey:
    entry = next(entry for entry in repository.list_keys() if entry["name"] == name)
    return _describe(entry, in_use_name=name if secret_source else "", secret_source=secret_source or "")


def list_keys() -> list[RepositoryKey]:
    """Every key object of the repository, sorted by id."""
    repository, secret_source = storage.reopen_repository()
    try:
        return [_describe(entry, in_use_name=repository.key_name, secret_source=secret_source)
                for entry in repository.list_keys()]
    finally:
        repository.close()


def add_key(*, actor: str) -> NewRepositoryKey:
    """Wrap the master key under a new generated secret; the platform keeps using its own.

    For a secret kept elsewhere: an escrow copy for the disaster-recovery CLI, or the next
    `REPOSITORY_KEY` of an operator who rotates through the secret files."""
    with repository_secret.key_operation(f"add by {actor}"):
        repository, _ = storage.reopen_repository()
        try:
            secret = _new_secret()
            name = repository.add_key(secret)
            key = _described_key(repository, name, secret_source=None)
        finally:
            repository.close()
    log.info("repository key keys/%s added by %s", key.id, actor)
    return NewRepositoryKey(key, secret)


def _key_name(key_id: str) -> str:
    if not isinstance(key_id, str) or not KEY_ID_PATTERN.match(key_id):
        raise RepositoryKeyNotFound(f"The repository has no key {str(key_id)[:80]!r}.",
                                    detail={"key": str(key_id)[:80]})
    return KEY_PREFIX + key_id


def remove_key(key_id: str, *, actor: str) -> None:
    """Delete one key object. Refused (409) for the last key, the key in use (rotate instead)
    and an orphan key (the runbook's repair removes it with what it sealed)."""
    name = _key_name(key_id)
    with repository_secret.key_operation(f"remove keys/{key_id} by {actor}"):
        repository, _ = storage.reopen_repository()
        try:
            repository.remove_key(name)
        except KeyNotFound:
            raise RepositoryKeyNotFound(f"The repository has no key {key_id}.", detail={"key": key_id}) from None
        except LastKey:
            raise RepositoryKeyRefused(f"Key {key_id} is the repository's last key: nothing could open it without it.",
                                       code="last_key", detail={"key": key_id}) from None
        except KeyInUse:
            raise RepositoryKeyRefused(f"Key {key_id} is the key the platform uses: rotate to replace it.",
                                       code="key_in_use", detail={"key": key_id}) from None
        except OrphanKey:
            raise RepositoryKeyRefused(f"Key {key_id} is an orphan key: remove it with what it sealed "
                                       f"({ORPHAN_RUNBOOK}).", code="orphan_key", detail={"key": key_id}) from None
        finally:
            repository.close()
        # A stored secret whose key is gone opens nothing: drop it.
        repository_secret.forget_stored_secret(key_id)
    log.info("repository key keys/%s removed by %s", key_id, actor)


def rotate(*, actor: str) -> NewRepositoryKey:
    """Add a key under a new generated secret, switch the platform to it, remove the old key.

    The switch: the new secret is stored (`repository_secret.store_secret`) and the old key,
    the one the platform's secret opened, is removed. From then on `REPOSITORY_KEY` (if it
    held the old secret) opens nothing and every process that opens the repository anew uses
    the stored secret; processes already running keep the master key they hold, which does
    not change. The new key is proven to open the repository before the secret is stored,
    and the old key is removed only after that. Refused (409) while orphan keys exist: after
    a rotation no secret of the platform would find what they sealed.
    """
    with repository_secret.key_operation(f"rotate by {actor}"):
        repository, source_before = storage.reopen_repository()
        try:
            if repository.orphan_ciphers:
                orphans = [_key_id(name) for name in sorted(repository.orphan_ciphers)]
                raise OrphanKeysPresent(
                    f"The repository has orphan keys; remove them and what they sealed first ({ORPHAN_RUNBOOK}).",
                    detail={"orphan_keys": orphans})
            old_name = repository.key_name
            secret = _new_secret()
            new_name = repository.add_key(secret)
            rotated = _open_with_new_key(repository, secret, new_name)
            repository_secret.store_secret(secret, _key_id(new_name), actor=actor)
            storage.forget_cached_repository()
            removed_key, removal_error = _key_id(old_name), ""
            try:
                rotated.remove_key(old_name)
            except EngineError as error:
                # The new secret is stored all the same; the old key stays until removed (and
                # stays in use while REPOSITORY_KEY opens it).
                removed_key, removal_error = None, error.message
                log.warning("repository key rotation by %s: the secret of keys/%s is stored, but the old "
                            "key %s was not removed: %s", actor, _key_id(new_name), old_name, error.message)
            # REPOSITORY_KEY is tried first: while it still opens the old key, the old key
            # stays the one in use (rotating again finishes the job).
            switched = removed_key is not None or source_before == repository_secret.STORED
            key = _described_key(rotated, new_name, secret_source=repository_secret.STORED if switched else None)
        finally:
            repository.close()
    log.info("repository key rotated by %s: keys/%s in use, %s removed", actor, key.id,
             f"keys/{removed_key}" if removed_key else "nothing")
    return NewRepositoryKey(key, secret, removed_key=removed_key, removal_error=removal_error)


def _open_with_new_key(repository, secret: str, new_name: str):
    """The repository opened with the new secret: proof that it opens the config before the
    platform depends on it. On failure the new key object is removed again."""
    try:
        rotated = Repository.open(repository.backend, secret)
        if rotated.key_name != new_name:
            raise EngineError(f"the new secret opened {rotated.key_name}, not {new_name}")
        return rotated
    except EngineError:
        try:
            repository.remove_key(new_name)
        except EngineError:
            log.warning("could not remove the unused new key %s after a failed rotation", new_name)
        raise
