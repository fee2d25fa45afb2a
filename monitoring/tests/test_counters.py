"""Persisted counters and the agreement between SQL totals and per-row contributions."""

from __future__ import annotations

import pytest

from backups.models import Backup, BackupStatus
from monitoring import counters, totals
from monitoring.models import MetricCounter
from monitoring.tests.factories import make_backup, make_volume

pytestmark = pytest.mark.django_db


def test_increment_creates_then_adds_and_keys_labels_canonically():
    counters.increment("backup_things_total", {"b": "2", "a": "1"}, 2)
    counters.increment("backup_things_total", {"a": "1", "b": "2"}, 3)
    counters.increment("backup_things_total", {"a": "other"})

    assert counters.read_all() == {
        ("backup_things_total", '{"a":"1","b":"2"}'): 5.0,
        ("backup_things_total", '{"a":"other"}'): 1.0,
    }
    assert MetricCounter.objects.count() == 2


def test_a_counter_cannot_go_down():
    with pytest.raises(ValueError):
        counters.increment("backup_things_total", {}, -1)


STATS = [
    (BackupStatus.COMPLETED, {"bytes_read": 10, "bytes_new": 5, "bytes_stored": 2, "duration_seconds": 9.5}),
    (BackupStatus.COMPLETED, {"bytes_read": 7, "duration_seconds": 10}),  # exactly on a bucket bound
    (BackupStatus.COMPLETED, {"bytes_read": 1, "duration_seconds": 100000}),  # beyond the last finite bucket
    (BackupStatus.COMPLETED, {"bytes_read": "not a number", "duration_seconds": None}),
    (BackupStatus.COMPLETED, {}),
    (BackupStatus.FAILED, {"bytes_read": 50, "duration_seconds": 3}),
    (BackupStatus.CANCELLED, {"bytes_read": 50}),
    (BackupStatus.RUNNING, {}),
]


def test_sql_totals_equal_the_sum_of_per_row_contributions(django_db_setup):
    volume = make_volume("sums")
    for status, stats in STATS:
        make_backup(volume, status, stats=stats)

    from_sql = totals.backup_totals_aggregates(Backup.objects.all())
    summed: dict[str, float] = {}
    for status, stats in STATS:
        for key, amount in totals.backup_contribution(status, stats).items():
            summed[key] = summed.get(key, 0.0) + amount

    as_counters = dict(((name, counters.canonical_labels(labels)), value)
                       for name, labels, value in totals.totals_to_counters(from_sql))
    expected = dict(((name, counters.canonical_labels(labels)), value)
                    for name, labels, value in totals.totals_to_counters(summed))
    assert as_counters == expected
    assert from_sql["success"] == 5 and from_sql["failure"] == 1
    assert from_sql["duration_count"] == 3
    assert from_sql["le_0"] == 2  # 9.5 and 10 are both <= 10
