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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from backups.engine.backend import Backend
from backups.engine.backends import LocalBackend, open_backend
from backups.engine.errors import RepositoryExists, RepositoryNotFound
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

    def public(self) -> dict:
        """What the API may show: no credentials, no secret."""
        return {"name": self.name, "kind": self.kind, "location": self.location,
                "endpoint_url": self.endpoint_url or None}

    @property
    def key_encryption_secret(self) -> str:
        return self.key or settings.REPOSITORY_KEY


def all_targets() -> dict[str, ReplicationTarget]:
    """Every configured target by name, in name order."""
    configured = getattr(settings, "REPLICATION_TARGETS", None) or {}
    return {name: ReplicationTarget(
        name=name, kind=spec["kind"], location=spec["location"], endpoint_url=spec.get("endpoint_url"),
        region=spec.get("region"), access_key_id=spec.get("access_key_id"),
        secret_access_key=spec.get("secret_access_key"), key=spec.get("key"))
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


def open_replica(target: ReplicationTarget, primary):
    """The target's repository, opened; created related to `primary` when the target holds
    none yet. `ReplicaNotRelated` (409) when it holds a repository with another master key,
    `WrongKey` when the target's secret opens no key of it. `close()` it when done."""
    from backups.engine.repository import Repository

    backend = engine_backend(target)
    try:
        replica = Repository.open(backend, target.key_encryption_secret)
    except RepositoryNotFound:
        try:
            replica = Repository.init(backend, target.key_encryption_secret, related_to=primary)
            log.info("initialised the replica of replication target %s at %s", target.name, target.location)
        except RepositoryExists:  # another worker created it first: open what it wrote
            replica = Repository.open(backend, target.key_encryption_secret)
    if not primary.is_related(replica):
        replica.close()
        raise ReplicaNotRelated(
            f"The repository at replication target {target.name!r} is not a replica of this platform's "
            "repository; point the target at an empty location or at this repository's replica.",
            detail={"replication_target": target.name})
    return replica
