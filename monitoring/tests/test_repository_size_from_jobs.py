"""The repository size gauge is fed by a real prune job (the runner records the size)."""

from __future__ import annotations

import pytest

from backups import runners, services
from backups.models import JobStatus, Policy
from monitoring.collectors import CatalogCollector
from monitoring.exposition import render
from monitoring.tests.factories import samples, value

pytestmark = pytest.mark.django_db


def test_a_prune_job_records_the_repository_size_for_the_gauge():
    policy = Policy.objects.get(is_default=True)
    job = services.start_prune(policy=policy, dry_run=True)  # not sent: on_commit does not run here

    assert runners.execute(job.pk) == JobStatus.SUCCEEDED

    job.refresh_from_db()
    assert job.result["repository_size_bytes"] > 0  # at least the wrapped key and config
    parsed = samples(render(CatalogCollector().collect()))
    assert value(parsed, "backup_repository_size_bytes") == job.result["repository_size_bytes"]
