"""RPO catch-up: after an outage, back up once the volumes whose RPO is already broken.

A volume's RPO is broken when its newest completed backup (or, never backed up, its creation)
is older than its RPO (`Volume.rpo_hours`: override, policy, or 24 h). The catch-up starts
that volume's backup *for its policy's current tick*, with the same idempotency key the
fan-out uses (`fanout.backup_key`): whichever of the two runs first starts the backup, the
other finds it, so a volume is backed up once per tick however many ticks were missed and in
whatever order beat and the catch-up come back. Volumes with an active backup or restore, or
whose policy is disabled, are left alone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Max, Q

from backups.models import BackupStatus, Policy
from backups.scheduling import clock, cron, fanout

logger = logging.getLogger(__name__)


def rpo_broken(volume, newest_completed: datetime | None, now: datetime) -> bool:
    reference = newest_completed or volume.created_at
    return now - reference > timedelta(hours=volume.rpo_hours)


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
        .annotate(newest_completed=Max("backups__completed_at", filter=Q(backups__status=BackupStatus.COMPLETED)))
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
        fanout.start_tick_backup(policy, ticks[policy.pk], volume, result)
    if result.started:
        logger.warning("RPO catch-up: %d backups started for volumes past their RPO", len(result.started))
    return result
