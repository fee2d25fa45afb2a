"""A backup job reads only the manifests it needs (bench/RESULTS.md, "Worker scaling"):
the parent comes from the catalog, the adopt search runs only on a redelivered attempt.

Storage reads are counted by a wrapper around the real local backend that
`open_repository()` uses; the process-wide manifest cache is emptied before the measured
backup, so the counts show what a fresh worker process would read.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups import runners, services, storage
from backups.engine.repository import forget_cached_manifests
from backups.models import Backup, BackupStatus, BackupTrigger, Job, JobStatus
from backups.storage import open_repository

pytestmark = pytest.mark.django_db


class CountingBackend:
    """Delegates everything to the real backend; records the names of `snapshots/` reads."""

    def __init__(self, inner):
        self.inner = inner
        self.manifest_reads: list[str] = []

    def get(self, name, offset=0, length=None):
        if name.startswith("snapshots/"):
            self.manifest_reads.append(name.rsplit("/", 1)[-1])
        return self.inner.get(name, offset, length)

    def __getattr__(self, attribute):
        return getattr(self.inner, attribute)


@pytest.fixture
def counting_backend(own_repository, monkeypatch):
    real_engine_backend = storage.engine_backend
    holder = {}

    def counted(**options):
        holder["backend"] = CountingBackend(real_engine_backend(**options))
        return holder["backend"]

    monkeypatch.setattr(storage, "engine_backend", counted)
    storage.forget_cached_repository()
    open_repository().close()  # the cached template now holds the counting backend
    return holder["backend"]


def back_up(volume) -> Backup:
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED, Job.objects.get(pk=backup.job_id).error
    backup.refresh_from_db()
    return backup


def load(snapshot_id):
    repository = open_repository()
    try:
        return repository.load_snapshot(snapshot_id)
    finally:
        repository.close()


def test_a_second_backup_reads_only_its_parent_manifest_not_other_volumes(make_volume, counting_backend):
    volumes = [make_volume(f"vol-{index}", files={"a.txt": b"alpha %d" % index, "b.txt": b"beta"})
               for index in range(4)]
    first = {volume.pk: back_up(volume) for volume in volumes}
    target = volumes[0]
    forget_cached_manifests()
    counting_backend.manifest_reads.clear()

    second = back_up(target)

    parent_id = first[target.pk].snapshot_id
    assert counting_backend.manifest_reads == [parent_id]
    snapshot = load(second.snapshot_id)
    assert snapshot.parent == parent_id
    assert snapshot.stats["files_reused"] == 2 and snapshot.stats["files_read"] == 0
    assert Job.objects.get(pk=second.job_id).result["adopted"] is False


def test_a_first_backup_reads_no_manifest_at_all(make_volume, counting_backend):
    for index in range(3):
        back_up(make_volume(f"other-{index}", files={"x.txt": b"x%d" % index}))
    forget_cached_manifests()
    counting_backend.manifest_reads.clear()
    backup = back_up(make_volume("new-volume", files={"a.txt": b"alpha"}))
    assert counting_backend.manifest_reads == []
    assert load(backup.snapshot_id).parent is None


def test_a_parent_forgotten_from_the_repository_means_a_full_read_not_a_failure(volume):
    first = back_up(volume)
    repository = open_repository()
    try:
        repository.delete_snapshot(first.snapshot_id)  # prune forgot it; the catalog lags
    finally:
        repository.close()
    second = back_up(volume)
    assert second.status == BackupStatus.COMPLETED and second.snapshot_id != first.snapshot_id
    snapshot = load(second.snapshot_id)
    assert snapshot.parent is None and snapshot.stats["files_read"] == 2


def test_a_redelivered_attempt_in_a_fresh_process_still_adopts_the_snapshot(volume, settings, counting_backend):
    backup = back_up(volume)
    written = backup.snapshot_id
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 5)
    Job.objects.filter(pk=backup.job_id).update(status=JobStatus.RUNNING, heartbeat_at=stale, worker="gone:1",
                                                finished_at=None)
    Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.RUNNING, snapshot_id="", stats={})
    forget_cached_manifests()  # the new worker process has never seen the manifest
    counting_backend.manifest_reads.clear()

    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED

    backup.refresh_from_db()
    job = Job.objects.get(pk=backup.job_id)
    assert job.attempts == 2 and job.result["adopted"] is True and backup.snapshot_id == written
    assert written in counting_backend.manifest_reads  # attempt 2 did search the repository
