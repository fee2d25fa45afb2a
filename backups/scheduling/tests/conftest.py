"""Fixtures of the scheduling tests: an injected clock and helpers to finish jobs."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backups import jobs
from backups.models import Backup, BackupStatus, Job
from backups.scheduling.clock import FixedClock, use_clock


@pytest.fixture
def fixed_clock():
    """The scheduler's clock, frozen at a known instant; tests move it with .set()/.advance()."""
    with use_clock(FixedClock(datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc))) as clock:
        yield clock


@pytest.fixture
def finish_backups():
    """Mark every active backup job succeeded, its Backup completed at `at`."""

    def finish(at: datetime) -> int:
        finished = 0
        for job in Job.objects.filter(status__in=("queued", "running"), kind="backup"):
            assert jobs.succeed(job, {"snapshot_id": f"snap-{job.pk}"})
            Backup.objects.filter(job=job).update(status=BackupStatus.COMPLETED, completed_at=at,
                                                  snapshot_id=f"snap-{job.pk}")
            finished += 1
        return finished

    return finish
