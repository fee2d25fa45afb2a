"""Verify and prune on the policy's own schedules: one job per tick, never piling up."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backups import jobs
from backups.models import Job, JobKind, Policy
from backups.scheduling import fanout

pytestmark = pytest.mark.django_db
UTC = timezone.utc


@pytest.fixture
def policy(db):
    return Policy.objects.create(name="maint", verify_schedule="0 3 * * 0", verify_percent=25,
                                 prune_schedule="0 20 * * *", timezone="Europe/Berlin")


def test_scheduled_verify_reads_the_policys_percentage_on_the_maintenance_queue(policy, fixed_clock):
    fixed_clock.set(datetime(2026, 7, 12, 1, 0, 5, tzinfo=UTC))  # Sunday 03:00:05 CEST
    job = Job.objects.get(pk=fanout.start_policy_verify(policy.pk))
    assert (job.kind, job.queue, job.policy_id) == (JobKind.VERIFY, "maintenance", policy.pk)
    assert job.params["read_data_percent"] == 25
    assert job.idempotency_key == f"policy:{policy.pk}:verify:2026-07-12T01:00:00+00:00"


def test_scheduled_prune_runs_once_per_tick_even_if_delivered_twice(policy, fixed_clock):
    fixed_clock.set(datetime(2026, 7, 15, 18, 0, 2, tzinfo=UTC))  # 20:00:02 CEST
    first = fanout.start_policy_prune(policy.pk)
    job = Job.objects.get(pk=first)
    assert (job.kind, job.queue, job.params["dry_run"]) == (JobKind.PRUNE, "maintenance", False)
    jobs.succeed(job, {})
    fixed_clock.advance(timedelta(minutes=3))
    assert fanout.start_policy_prune(policy.pk) is None
    fixed_clock.advance(timedelta(days=1))
    assert fanout.start_policy_prune(policy.pk) is not None
    assert Job.objects.filter(kind=JobKind.PRUNE).count() == 2


def test_a_still_running_verify_is_not_joined_by_the_next_one(policy, fixed_clock):
    fixed_clock.set(datetime(2026, 7, 12, 1, 0, tzinfo=UTC))
    assert fanout.start_policy_verify(policy.pk)
    fixed_clock.advance(timedelta(days=7))  # a week later the first is somehow still queued
    assert fanout.start_policy_verify(policy.pk) is None
    assert Job.objects.filter(kind=JobKind.VERIFY).count() == 1


def test_disabled_policy_or_empty_schedule_starts_no_maintenance(policy, fixed_clock):
    policy.prune_schedule = ""
    policy.save()
    assert fanout.start_policy_prune(policy.pk) is None
    policy.enabled = False
    policy.save()
    assert fanout.start_policy_verify(policy.pk) is None
    assert not Job.objects.exists()
