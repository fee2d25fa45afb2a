"""What a policy's beat run does: one backup job per volume, or one verify / prune / drill /
replicate job.

Idempotence: a run belongs to the *tick* it was scheduled for - the latest cron time at or
before now in the policy's time zone (`cron.previous_run`). Each backup it starts carries the
idempotency key `policy:<policy id>:<tick UTC ISO>:volume:<volume id>`, so beat firing a tick
twice (a duplicate message, a DST quirk, beat's one catch-up run after an outage, or the RPO
catch-up racing the fan-out) never backs a volume up twice for the same tick.

Volumes of a policy: those pointing to it, and for the default policy also those with no
policy. Only `available` volumes are backed up; one with an active backup or restore is
skipped (reported, not an error). A drill takes one volume of the policy at random (the
choice is injected, like the clock) among those with a completed backup, whatever their
status, and drills its newest backup.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from backups.models import ACTIVE_JOB_STATUSES, BackupTrigger, Job, JobKind, Policy
from backups.scheduling import clock, cron

logger = logging.getLogger(__name__)

SCHEDULER_ACTOR = "scheduler"


@dataclass
class FanOutResult:
    """What one run did; logged, and returned by the Celery task for the worker log."""

    policy: str
    tick: str = ""
    started: list[str] = field(default_factory=list)  # job ids
    skipped: dict[str, str] = field(default_factory=dict)  # volume name -> reason

    def as_dict(self) -> dict:
        return {"policy": self.policy, "tick": self.tick, "started": len(self.started), "skipped": self.skipped}


def volumes_of(policy: Policy) -> QuerySet:
    from volumes.models import Volume

    condition = Q(policy=policy)
    if policy.is_default:
        condition |= Q(policy__isnull=True)
    return Volume.objects.filter(condition)


def backup_key(policy_id: int, tick: datetime, volume_id) -> str:
    return f"policy:{policy_id}:{tick.isoformat()}:volume:{volume_id}"


def current_tick(policy: Policy, now: datetime | None = None) -> datetime:
    return cron.previous_run(cron.parse(policy.schedule, policy.timezone), now or clock.now())


def start_tick_backup(policy: Policy, tick: datetime, volume, result: FanOutResult) -> None:
    """Start the backup of `volume` for `tick` unless it exists or the volume is busy."""
    start_keyed_backup(policy, volume, backup_key(policy.pk, tick, volume.pk), result)


def start_keyed_backup(policy: Policy, volume, key: str, result: FanOutResult) -> None:
    """Start a scheduled backup of `volume` with idempotency `key`, unless a job with that key
    exists or the volume is busy or not available; records what happened in `result`."""
    from backups import services
    from backups.errors import BackupInProgress
    from backups.volume_access import VolumeNotAvailable
    from volumes.models import VolumeStatus

    if volume.status != VolumeStatus.AVAILABLE:
        result.skipped[volume.name] = f"volume is {volume.status}"
        return
    if Job.objects.filter(idempotency_key=key).exists():
        result.skipped[volume.name] = "already started for this tick"
        return
    if Job.objects.filter(volume=volume, status__in=ACTIVE_JOB_STATUSES,
                          kind__in=(JobKind.BACKUP, JobKind.RESTORE)).exists():
        result.skipped[volume.name] = "a backup or restore is already active"
        return
    try:
        backup = services.trigger_backup(volume, trigger=BackupTrigger.SCHEDULE, actor=SCHEDULER_ACTOR,
                                         idempotency_key=key, policy=policy)
    except BackupInProgress:
        # Lost a race with a trigger from elsewhere: the database constraint said no.
        result.skipped[volume.name] = "a backup or restore is already active"
        return
    except VolumeNotAvailable as error:
        result.skipped[volume.name] = error.message
        return
    result.started.append(str(backup.job_id))


def fan_out_backups(policy_id: int, *, now: datetime | None = None) -> FanOutResult:
    """Start this tick's backup of every volume of the policy (see module contract)."""
    policy = Policy.objects.filter(pk=policy_id).first()
    if policy is None:
        logger.warning("scheduled backup of policy %s: the policy no longer exists", policy_id)
        return FanOutResult(policy=str(policy_id))
    result = FanOutResult(policy=policy.name)
    if not policy.enabled:
        logger.info("scheduled backup of policy %s skipped: the policy is disabled", policy.name)
        return result
    try:
        tick = current_tick(policy, now)
    except cron.InvalidSchedule as error:
        logger.error("scheduled backup of policy %s skipped: %s", policy.name, error)
        return result
    result.tick = tick.isoformat()
    for volume in volumes_of(policy).order_by("name").iterator(chunk_size=500):
        start_tick_backup(policy, tick, volume, result)
    logger.info("scheduled backup of policy %s for tick %s: %d started, %d skipped",
                policy.name, result.tick, len(result.started), len(result.skipped))
    return result


def _maintenance_key(kind: str, policy: Policy, schedule_expression: str, now: datetime) -> str:
    tick = cron.previous_run(cron.parse(schedule_expression, policy.timezone), now)
    return f"policy:{policy.pk}:{kind}:{tick.isoformat()}"


def _start_maintenance(kind: str, policy_id: int, now: datetime | None, start) -> str | None:
    """Start one verify, prune or drill job for the policy's current tick; None when not
    started. `start(policy)` returns the job, or None when there is nothing to do."""
    from backups.scheduling.sync import scheduled_expression

    policy = Policy.objects.filter(pk=policy_id).first()
    if policy is None or not policy.enabled:
        logger.info("scheduled %s of policy %s skipped: policy missing or disabled", kind, policy_id)
        return None
    expression = scheduled_expression(policy, kind)
    if not expression:
        return None
    try:
        key = _maintenance_key(kind, policy, expression, now or clock.now())
    except cron.InvalidSchedule as error:
        logger.error("scheduled %s of policy %s skipped: %s", kind, policy.name, error)
        return None
    if Job.objects.filter(idempotency_key=key).exists():
        logger.info("scheduled %s of policy %s: already started for this tick", kind, policy.name)
        return None
    if Job.objects.filter(kind=kind, policy=policy, status__in=ACTIVE_JOB_STATUSES).exists():
        # A long verify, prune or drill still running: starting another would only queue behind it.
        logger.info("scheduled %s of policy %s skipped: the previous one is still active", kind, policy.name)
        return None
    job = start(policy)
    if job is None:
        return None
    try:
        # The services are called without the key (the drill's backup is only chosen inside
        # `start`); stamping it right after creation still makes a second delivery of the same
        # tick (the common duplicate) a no-op.
        with transaction.atomic():
            Job.objects.filter(pk=job.pk, idempotency_key__isnull=True).update(idempotency_key=key)
    except IntegrityError:
        logger.warning("scheduled %s of policy %s started twice for one tick (race)", kind, policy.name)
    logger.info("scheduled %s of policy %s: job %s", kind, policy.name, job.pk)
    return str(job.pk)


def start_policy_verify(policy_id: int, *, now: datetime | None = None) -> str | None:
    from backups import services

    return _start_maintenance(
        JobKind.VERIFY, policy_id, now,
        lambda policy: services.start_verify(read_data_percent=policy.verify_percent,
                                             actor=SCHEDULER_ACTOR, policy=policy),
    )


def start_policy_prune(policy_id: int, *, now: datetime | None = None) -> str | None:
    from backups import services

    return _start_maintenance(
        JobKind.PRUNE, policy_id, now,
        lambda policy: services.start_prune(policy=policy, actor=SCHEDULER_ACTOR),
    )


def start_policy_replicate(policy_id: int, *, now: datetime | None = None) -> str | None:
    """Copy the policy's backups missing from its replication target (a target no longer
    configured is logged and skipped: the lag metric keeps growing and alerts)."""
    from backups import services
    from backups.errors import NoReplicationTarget, UnknownReplicationTarget

    def start(policy: Policy):
        try:
            return services.start_replicate(policy=policy, actor=SCHEDULER_ACTOR)
        except (NoReplicationTarget, UnknownReplicationTarget) as error:
            logger.error("scheduled replication of policy %s skipped: %s", policy.name, error.message)
            return None

    return _start_maintenance(JobKind.REPLICATE, policy_id, now, start)


def drill_candidates(policy: Policy) -> list:
    """Ids of the policy's volumes that have a completed backup, in a stable order."""
    from backups import selectors

    completed = selectors.completed_backups(volume__in=volumes_of(policy).values("pk"))
    return sorted(completed.order_by().values_list("volume_id", flat=True).distinct(), key=str)


def start_policy_drill(policy_id: int, *, now: datetime | None = None,
                       choose: Callable[[Sequence], object] = random.choice) -> str | None:
    """Drill the newest backup of one volume of the policy, `choose`n among `drill_candidates`."""
    from backups import selectors, services
    from backups.errors import BackupNotRestorable, DrillInProgress

    def start(policy: Policy):
        candidates = drill_candidates(policy)
        if not candidates:
            logger.info("scheduled drill of policy %s skipped: no volume of it has a completed backup", policy.name)
            return None
        backup = selectors.newest_completed_backup(choose(candidates))
        if backup is None:  # forgotten since the candidates were read: the next tick drills
            return None
        try:
            return services.start_drill(backup, actor=SCHEDULER_ACTOR, policy=policy)
        except (BackupNotRestorable, DrillInProgress) as error:
            # Forgotten meanwhile, or being drilled by hand right now: the next tick drills.
            logger.info("scheduled drill of policy %s skipped: %s", policy.name, error.message)
            return None

    return _start_maintenance(JobKind.DRILL, policy_id, now, start)
