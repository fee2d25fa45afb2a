"""Backup runner: one volume → one snapshot, exactly once per job.

Idempotent: the snapshot is tagged `job:<job id>`; a redelivered job (its worker died after
the engine committed the snapshot but before the catalog was updated) finds it and adopts it
instead of writing a second one. A crash before the commit point leaves only unreferenced
packs, which prune removes.

Neither step scans every manifest of the repository on a first attempt, because those scans
made backup-all O(volumes²) (bench/RESULTS.md, "Worker scaling"): the job-tag search runs
only from the second attempt on, and the parent snapshot comes from the catalog (the
volume's newest completed backup).
"""

from __future__ import annotations

from django.utils import timezone

from backups import pack_verification, selectors, volume_access
from backups.catalog_records import VOLUME_NAME_TAG_PREFIX, VOLUME_SOURCE_PREFIX, manifest_metadata
from backups.models import Backup
from backups.runners.results import backup_stats


def job_tag(job) -> str:
    return f"job:{job.pk}"


def volume_tag(volume_id) -> str:
    return f"{VOLUME_SOURCE_PREFIX}{volume_id}"


def volume_name_tag(name: str) -> str:
    """Names the volume inside the snapshot, for `python -m backups.engine snapshots`, which
    reads the repository without the platform's database (the source is only the id)."""
    return f"{VOLUME_NAME_TAG_PREFIX}{name}"


def adoptable_snapshots(repository, job) -> list:
    """Snapshots an earlier attempt of `job` committed (normally none).

    `jobs.claim` counts every claim in `attempts` before a runner starts, so on attempt 1 no
    earlier run of this job can have reached the engine and the scan, which reads every
    manifest of the repository, is skipped. Redeliveries, take-overs and retries (attempt
    2+) scan, so a snapshot a dead worker committed is adopted instead of duplicated.
    """
    if job.attempts <= 1:
        return []
    return repository.snapshots(tags=[job_tag(job)])


def catalog_parent(volume_id, *, exclude=None) -> str | None:
    """The snapshot id of the volume's newest completed, not forgotten backup, or None.

    The catalog already knows it, so the engine need not scan every manifest for the
    newest one with this source (`parent="auto"`). No completed backup means a full read,
    as "auto" would do on a repository in step with the catalog; an id prune removed from
    the repository meanwhile also means a full read (see `archiver.backup`).
    """
    newest = selectors.newest_completed_backup(volume_id, exclude=exclude)
    return newest.snapshot_id if newest is not None else None


def lock_for(volume):
    """The engine `Retention` the volume's policy asks for (None: no Object Lock). Volumes
    without a policy follow the default policy, as for everything else."""
    from backups.engine.objectlock import Retention
    from volumes.services import default_policy

    policy = volume.policy if volume.policy_id else default_policy()
    if policy is None or not policy.lock_mode or not policy.lock_days:
        return None
    return Retention.for_days(policy.lock_mode, policy.lock_days, now=timezone.now())


def run(job, context) -> dict:
    from backups.storage import open_repository

    backup = Backup.objects.get(job=job)
    volume = volume_access.get_volume(job.volume_id)
    if volume is None:
        raise volume_access.VolumeNotFound(f"Volume {job.volume_id} no longer exists.")
    source = volume_access.data_path(volume)
    if not source.is_dir():
        raise volume_access.VolumeNotFound(f"The data folder of volume {volume.name} is missing.",
                             detail={"volume": str(volume.pk)})
    used_bytes = volume_access.refresh_usage(volume)
    context.progress(0, used_bytes, "backing up")
    tags = [volume_tag(volume.pk), job_tag(job), volume_name_tag(volume.name)]
    repository = open_repository()
    written: dict[str, int] = {}  # an adopted snapshot's packs are learnt by the next verify
    locked_until = None
    try:
        earlier = adoptable_snapshots(repository, job)
        if earlier:
            snapshot = earlier[0]
            snapshot_id, stats, adopted = snapshot.id, backup_stats(snapshot), True
            retention = repository.backend.retention(f"snapshots/{snapshot_id}")
            locked_until = retention.until if retention is not None else None
        else:
            started = timezone.now()
            retention = lock_for(volume)
            outcome = repository.backup(
                str(source), source=volume_tag(volume.pk), tags=tags,
                parent=catalog_parent(volume.pk, exclude=backup.pk),
                progress=context.progress, cancel=context.cancel,
                # The catalog's record of the volume and this backup, so that the catalog
                # can be rebuilt from the repository alone (manage.py rebuild_catalog).
                metadata=manifest_metadata(volume, backup),
                retention=retention,
            )
            snapshot_id, stats, adopted = outcome.snapshot_id, backup_stats(outcome), False
            locked_until = retention.until if retention is not None else None
            if retention is not None:
                stats["packs_lock_extended"] = outcome.packs_extended
            written = outcome.packs
            stats.setdefault("duration_seconds", (timezone.now() - started).total_seconds())
    finally:
        repository.close()
    Backup.objects.filter(pk=backup.pk).update(snapshot_id=snapshot_id, stats=stats, tags=tags,
                                               locked_until=locked_until)
    # The catalog knows each new pack from now on: the next verify reads it, and
    # `backup_unverified_bytes` counts it until then.
    pack_verification.register_written(written)
    return {"backup": str(backup.pk), "snapshot_id": snapshot_id, "stats": stats, "adopted": adopted,
            "locked_until": locked_until.isoformat() if locked_until else None}
