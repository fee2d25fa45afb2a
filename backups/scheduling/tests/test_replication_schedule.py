"""Replication on the policy's own schedule: a `policy:<id>:replicate` periodic task exists
while the policy names a target and a schedule, and each tick starts one replicate job."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django_celery_beat.models import PeriodicTask

from backups.models import Job, JobKind, JobStatus, Policy
from backups.scheduling import fanout, sync

pytestmark = pytest.mark.django_db
UTC = timezone.utc
HALF_PAST = datetime(2026, 7, 15, 9, 30, 5, tzinfo=UTC)


@pytest.fixture
def targets(settings, tmp_path):
    settings.REPLICATION_TARGETS = {"dr": {"kind": "local", "location": str(tmp_path / "replica"), "key": None}}


def replicate_task(policy) -> PeriodicTask | None:
    return PeriodicTask.objects.filter(name=sync.periodic_task_name(policy.pk, "replicate")).first()


def test_the_replicate_task_follows_the_target_and_the_schedule(targets):
    policy = Policy.objects.create(name="p", replication_schedule="30 * * * *")
    assert replicate_task(policy) is None  # a schedule without a target replicates nothing
    policy.replication_target = "dr"
    policy.save()
    task = replicate_task(policy)
    assert task.task == sync.TASK_POLICY_REPLICATE and (task.crontab.minute, task.crontab.hour) == ("30", "*")
    assert task.enabled
    policy.replication_target = ""
    policy.save()
    assert replicate_task(policy) is None


def test_one_replicate_job_per_tick_and_none_while_one_is_active(targets, fixed_clock):
    policy = Policy.objects.create(name="p", replication_target="dr", replication_schedule="30 * * * *")
    fixed_clock.set(HALF_PAST)
    first = fanout.start_policy_replicate(policy.pk)
    job = Job.objects.get(pk=first)
    assert (job.kind, job.queue, job.policy_id, job.created_by) == (JobKind.REPLICATE, "maintenance", policy.pk,
                                                                    "scheduler")
    assert job.idempotency_key == f"policy:{policy.pk}:replicate:2026-07-15T09:30:00+00:00"
    assert fanout.start_policy_replicate(policy.pk) is None  # the same tick delivered twice
    fixed_clock.set(HALF_PAST.replace(hour=10))
    assert fanout.start_policy_replicate(policy.pk) is None  # the previous one is still queued
    Job.objects.filter(pk=first).update(status=JobStatus.SUCCEEDED)
    assert fanout.start_policy_replicate(policy.pk) is not None


def test_a_target_removed_from_the_settings_skips_the_tick(settings, fixed_clock):
    settings.REPLICATION_TARGETS = {}
    policy = Policy.objects.create(name="p", replication_target="gone", replication_schedule="30 * * * *")
    fixed_clock.set(HALF_PAST)
    assert fanout.start_policy_replicate(policy.pk) is None
    assert not Job.objects.filter(kind=JobKind.REPLICATE).exists()
