"""A 15-minute RPO in the metrics, the admin's protection status and the RPO catch-up."""

from __future__ import annotations

import datetime

import pytest

from backups.scheduling import rpo
from monitoring import protection
from monitoring.tests.factories import make_backup, make_volume, value
from monitoring.tests.test_collectors import scrape

pytestmark = pytest.mark.django_db


def test_a_15_minute_rpo_volume_is_in_violation_after_16_minutes_without_a_backup():
    volume = make_volume("orders-db", rpo_minutes_override=15)
    backup = make_backup(volume, finished_hours_ago=0)
    completed = backup.completed_at
    labels = {"volume": "orders-db", "volume_id": str(volume.id)}

    fourteen, sixteen = completed + datetime.timedelta(minutes=14), completed + datetime.timedelta(minutes=16)
    assert value(scrape(clock=lambda: fourteen), "backup_rpo_violation", **labels) == 0
    later = scrape(clock=lambda: sixteen)
    assert value(later, "backup_rpo_violation", **labels) == 1
    assert value(later, "backup_rpo_seconds", **labels) == 900

    annotated = protection.with_protection(type(volume).objects.filter(pk=volume.pk))
    assert [v.name for v in protection.filter_by_status(annotated, protection.RpoStatus.LATE, sixteen)] == ["orders-db"]
    assert protection.rpo_status(completed, volume.rpo_minutes, fourteen) == protection.RpoStatus.OK
    assert rpo.rpo_broken(volume, completed, sixteen) and not rpo.rpo_broken(volume, completed, fourteen)
