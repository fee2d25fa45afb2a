"""Errors of the backups service layer, in the platform's one error shape.

Each class pairs an HTTP status with a stable `code`; views never format errors themselves.
"""

from __future__ import annotations

from storage_platform.errors import BadRequest, Conflict, NotFound


class BackupInProgress(Conflict):
    """A backup or restore of this volume is already queued or running."""

    code = "backup_in_progress"


class BackupNotFound(NotFound):
    """The backup does not exist."""

    code = "backup_not_found"


class BackupNotRestorable(Conflict):
    """Only a completed backup whose snapshot is still in the repository can be restored."""

    code = "backup_not_restorable"


class DrillInProgress(Conflict):
    """A restore drill of this backup is already queued or running."""

    code = "drill_in_progress"


class BackupActive(Conflict):
    """The backup is still queued or running; cancel its job first."""

    code = "backup_active"


class BackupLocked(Conflict):
    """The backup is locked (S3 Object Lock) and cannot be deleted before its lock ends."""

    code = "backup_locked"


class IdempotencyKeyReused(Conflict):
    """This Idempotency-Key was already used for a different request."""

    code = "idempotency_key_reused"


class JobFinished(Conflict):
    """The job has already finished."""

    code = "job_finished"


class InvalidRestoreTarget(BadRequest):
    """The restore target is not valid."""

    code = "invalid_restore_target"


class JobCancelled(Exception):
    """Raised inside a runner when its job was cancelled (or taken over by another worker)."""



class UnknownReplicationTarget(BadRequest):
    """No replication target of this name is configured (REPLICATION_TARGETS)."""

    code = "unknown_replication_target"


class NoReplicationTarget(Conflict):
    """The policy names no replication target."""

    code = "no_replication_target"


class ReplicaNotRelated(Conflict):
    """The replication target holds a repository that is not a replica of this platform's
    repository (another master key): snapshots cannot keep their ids there."""

    code = "replica_not_related"
