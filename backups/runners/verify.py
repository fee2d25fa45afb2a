"""Verify runner: check the repository's structure and read a share of its data.

With `read_data_percent` > 0 the packs read are chosen from the catalog's last-verified time
per pack (`backups.pack_verification`): every pack never verified, every pack that would
otherwise pass `VERIFY_REVERIFY_DAYS` unread before the next scheduled verify, then the
longest-unverified ones up to that percentage (or the window's share per run, when larger);
the packs read intact get the job's start as their verified time. 0 checks the structure
only.

A damaged repository fails the job (code `verify_failed`) with the engine's report kept in
the job's `result`, so an operator sees which packs and snapshots are affected.
"""

from __future__ import annotations

from django.utils import timezone

from backups import pack_verification
from backups.runners import RunnerFailure
from backups.runners.results import to_jsonable


def _report_ok(report) -> bool:
    for name in ("ok", "is_ok", "passed"):
        value = getattr(report, name, None)
        if value is not None:
            return bool(value() if callable(value) else value)
    return not (getattr(report, "errors", None) or getattr(report, "damaged_packs", None))


def run(job, context) -> dict:
    from backups.engine.verify import verify_repository
    from backups.storage import open_repository

    percent = float(job.params.get("read_data_percent", 0))
    started = job.started_at or timezone.now()
    selection = pack_verification.selection(percent, now=started) if percent > 0 else None
    repository = open_repository()
    try:
        report = verify_repository(repository, read_data_percent=percent, progress=context.progress,
                                   select=selection)
    finally:
        repository.close()
    result = {"read_data_percent": percent, "report": to_jsonable(report)}
    if selection is not None:
        result["packs_verified"] = pack_verification.record(
            report.read_pack_ids, report.damaged_packs, offered=selection.offered, sizes=report.pack_sizes,
            job_id=job.pk, at=started)
        result.update(selection.summary())
    if job.params.get("backup"):
        snapshot_id = job.params.get("snapshot_id", "")
        result["backup"] = job.params["backup"]
        result["snapshot_id"] = snapshot_id
        # The repository-wide check names the snapshots damage breaks; say whether this one is.
        result["snapshot_ok"] = snapshot_id not in (getattr(report, "broken_snapshots", None) or [])
    if not _report_ok(report):
        raise RunnerFailure("The repository verification found damage; see the job result.", "verify_failed", result)
    return result
