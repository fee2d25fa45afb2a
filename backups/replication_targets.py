"""Replication targets: the second storage locations a policy may copy its backups to.

Configured only by the operator (`settings.REPLICATION_TARGETS`, parsed and validated at
start by `storage_platform.config.replication_targets`), because they carry credentials; the
API names them and shows their location, never their credentials.

`open_replica(target, primary)` opens the target's repository, and creates it on first use
as a repository *related* to the primary (`Repository.init(..., related_to=primary)`: the same
master key, its own config id and its own key object). That is what lets a copied snapshot
keep its id, so the catalog's `Backup.snapshot_id` is valid in the replica and failing over
is pointing the backups storage at it (docs/runbook-primary-bucket-lost.md). The replica's
key object is wrapped with the target's `key_file` secret, else with `REPOSITORY_KEY`, so the
escrowed repository key file opens both unless a target says otherwise. Creating is race-free
as for the primary: `Repository.init` lets exactly one of several processes win.

A target with `lock_mode` and `lock_days` is an immutable replica: every copy into it is
locked with S3 Object Lock (`retention()`, passed to `Repository.copy_to`), so an attacker
holding the platform's credentials cannot delete the off-site copy either. `open_replica`
refuses such a target whose bucket cannot lock objects (`ObjectLockUnsupported`) before it
creates or changes anything there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from backups.engine.backend import Backend
from backups.engine.backends import LocalBackend, open_backend
from backups.engine.errors import RepositoryExists, RepositoryNotFound, WrongKey
from backups.errors import ReplicaNotRelated, UnknownReplicationTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicationTarget:
    name: str
    kind: str  # local | s3
    location: str  # a directory or s3://bucket/prefix: never a credential
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    key: str | None = None  # the secret read from key_file, None: REPOSITORY_KEY
    lock_mode: str | None = None  # governance | compliance: copies are locked (S3 only)
    lock_days: int | None = None

    def public(self) -> dict:
        """What the API may show: no credentials, no secret."""
        return {"name": self.name, "kind": self.kind, "location": self.location,
                "endpoint_url": self.endpoint_url or None, "lock_mode": self.lock_mode,
                "lock_days": self.lock_days}

    def retention(self, now=None):
        """The `objectlock.Retention` a copy written now gets; None when the target locks
        nothing."""
        if not self.lock_mode:
            return None
        from backups.engine.objectlock import Retention

        return Retention.for_days(self.lock_mode, self.lock_days, now=now)


def all_targets() -> dict[str, ReplicationTarget]:
    """Every configured target by name, in name order."""
    configured = getattr(settings, "REPLICATION_TARGETS", None) or {}
    return {name: ReplicationTarget(
        name=name, kind=spec["kind"], location=spec["location"], endpoint_url=spec.get("endpoint_url"),
        region=spec.get("region"), access_key_id=spec.get("access_key_id"),
        secret_access_key=spec.get("secret_access_key"), key=spec.get("key"),
        lock_mode=spec.get("lock_mode"), lock_days=spec.get("lock_days"))
        for name, spec in sorted(configured.items())}


def get_target(name: str) -> ReplicationTarget:
    """The target `name`; `UnknownReplicationTarget` (400) when none is configured so."""
    target = all_targets().get(name)
    if target is None:
        known = ", ".join(all_targets()) or "none configured"
        raise UnknownReplicationTarget(f"No replication target named {name!r} (known: {known}).",
                                       detail={"replication_target": name})
    return target


def engine_backend(target: ReplicationTarget) -> Backend:
    """The engine backend of the target, wrapped in retries; an S3 target gets its own client
    (its own endpoint, region and credentials), independent of the backups storage's."""
    if target.kind == "local":
        return open_backend(LocalBackend(target.location))
    return open_backend(target.location, endpoint_url=target.endpoint_url, region=target.region,
                        access_key_id=target.access_key_id, secret_access_key=target.secret_access_key)


def replica_secrets(target: ReplicationTarget) -> list[str]:
    """The secrets that should open the target's replica, in order: its `key_file` secret;
    without one, the platform's (`REPOSITORY_KEY`, then the secret the latest key rotation
    stored), as for the primary."""
    if target.key:
        return [target.key]
    from backups import repository_secret

    return [candidate.secret for candidate in repository_secret.candidate_secrets()]


def open_replica(target: ReplicationTarget, primary):
    """The target's repository, opened; created related to `primary` when the target holds
    none yet. `ReplicaNotRelated` (409) when it holds a repository with another master key,
    `WrongKey` when none of `replica_secrets` opens it. `close()` it when done.

    A replica opened with one of several secrets gets a key object for each other one
    (`add_key`: one small object, no data rewritten). So after a key rotation of the primary,
    whose new secret the platform stores until the operator makes it `REPOSITORY_KEY`, the
    replica opens with the new secret too, and keeps opening once the old one is gone.
    """
    from backups.engine.repository import Repository

    secrets = replica_secrets(target)
    if not secrets:
        raise WrongKey("no repository secret: set REPOSITORY_KEY or REPOSITORY_KEY_FILE")
    backend = engine_backend(target)
    if target.lock_mode:
        try:
            backend.check_object_lock()
        except Exception:
            backend.close()
            raise
    try:
        replica, opened_with = _open_with_any(Repository, backend, secrets)
    except RepositoryNotFound:
        try:
            replica = Repository.init(backend, secrets[0], related_to=primary)
            log.info("initialised the replica of replication target %s at %s", target.name, target.location)
        except RepositoryExists:  # another worker created it first: open what it wrote
            replica, opened_with = _open_with_any(Repository, backend, secrets)
        else:
            opened_with = secrets[0]
    if not primary.is_related(replica):
        replica.close()
        raise ReplicaNotRelated(
            f"The repository at replication target {target.name!r} is not a replica of this platform's "
            "repository; point the target at an empty location or at this repository's replica.",
            detail={"replication_target": target.name})
    for secret in secrets:
        # A backend of its own for the probe: closing a repository closes its backend.
        if secret != opened_with and not _opens(Repository, engine_backend(target), secret):
            replica.add_key(secret)
            log.info("replica of replication target %s: added a key object for the platform's current secret",
                     target.name)
    return replica


def _open_with_any(repository_class, backend, secrets: list[str]):
    for secret in secrets:
        try:
            return repository_class.open(backend, secret), secret
        except WrongKey:
            continue
    raise WrongKey("no secret of the platform opens the replica at " + backend.location)


def _opens(repository_class, backend, secret: str) -> bool:
    try:
        repository_class.open(backend, secret).close()
    except WrongKey:
        return False
    return True
