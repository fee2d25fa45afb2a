"""RPO catch-up: after an outage, back up once the volumes whose RPO is already broken.

A volume's RPO is broken when its newest completed backup (or, never backed up, its creation)
is older than its RPO (`Volume.rpo_minutes`: override, policy, or a day). Volumes with an active
backup or restore, or whose policy is disabled, are left alone. For a broken volume the
catch-up starts, in this order of preference:

1. *the current tick's scheduled backup*, with the fan-out's own idempotency key
   (`fanout.backup_key`), when it does not exist yet: whichever of beat's late run and the
   catch-up comes first starts it, the other finds it - one backup per volume however many
   ticks were missed;
2. otherwise (that backup exists and finished, yet the RPO is still broken: it failed, or the
   RPO is shorter than the schedule's interval) one catch-up backup keyed
   `rpo:<volume id>:<newest good backup>`: at most one per volume until a backup completes,
   so a failing volume is not retried every five minutes (the job runner already retries
   transient errors with backoff).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import OuterRef, Subquery

from backups import selectors
from backups.models import Job, Policy
from backups.scheduling import clock, cron, fanout

logger = logging.getLogger(__name__)


def rpo_broken(volume, newest_completed: datetime | None, now: datetime) -> bool:
    reference = newest_completed or volume.created_at
    return now - reference > timedelta(minutes=volume.rpo_minutes)


def catch_up_key(volume_id, reference: datetime) -> str:
    return f"rpo:{volume_id}:{reference.isoformat()}"


def catch_up(*, now: datetime | None = None) -> fanout.FanOutResult:
    """Start a backup of every volume whose RPO is broken (see module contract)."""
    from volumes.models import Volume, VolumeStatus

    now = now or clock.now()
    result = fanout.FanOutResult(policy="*rpo-catch-up*")
    policies = {policy.pk: policy for policy in Policy.objects.all()}
    default_policy = next((policy for policy in policies.values() if policy.is_default), None)
    volumes = (
        Volume.objects.filter(status=VolumeStatus.AVAILABLE)
        .select_related("policy")
        .annotate(newest_completed=Subquery(
            selectors.newest_completed_backups(volume_id=OuterRef("pk")).values("completed_at")[:1]))
        .order_by("name")
    )
    ticks: dict[int, datetime] = {}
    for volume in volumes.iterator(chunk_size=500):
        policy = policies.get(volume.policy_id) if volume.policy_id else default_policy
        if policy is None or not policy.enabled:
            continue
        if not rpo_broken(volume, volume.newest_completed, now):
            continue
        if policy.pk not in ticks:
            try:
                ticks[policy.pk] = fanout.current_tick(policy, now)
            except cron.InvalidSchedule as error:
                logger.error("RPO catch-up: policy %s has no valid schedule (%s)", policy.name, error)
                ticks[policy.pk] = None
        if ticks[policy.pk] is None:
            continue
        tick_key = fanout.backup_key(policy.pk, ticks[policy.pk], volume.pk)
        if not Job.objects.filter(idempotency_key=tick_key).exists():
            fanout.start_tick_backup(policy, ticks[policy.pk], volume, result)
        else:
            reference = volume.newest_completed or volume.created_at
            fanout.start_keyed_backup(policy, volume, catch_up_key(volume.pk, reference), result)
    if result.started:
        logger.warning("RPO catch-up: %d backups started for volumes past their RPO", len(result.started))
    return result
