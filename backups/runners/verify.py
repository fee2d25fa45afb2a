"""Verify runner: check the repository's structure and read a percentage of its data.

A damaged repository fails the job (code `verify_failed`) with the engine's report kept in
the job's `result`, so an operator sees which packs and snapshots are affected.
"""

from __future__ import annotations

from backups.runners import RunnerFailure
from backups.runners.results import to_jsonable


def _report_ok(report) -> bool:
    for name in ("ok", "is_ok", "passed"):
        value = getattr(report, name, None)
        if value is not None:
            return bool(value() if callable(value) else value)
    return not (getattr(report, "errors", None) or getattr(report, "damaged_packs", None))


def run(job, context) -> dict:
    from backups.storage import open_repository

    percent = float(job.params.get("read_data_percent", 0))
    repository = open_repository()
    try:
        report = repository.verify(read_data_percent=percent, progress=context.progress)
    finally:
        repository.close()
    result = {"read_data_percent": percent, "report": to_jsonable(report)}
    if job.params.get("backup"):
        snapshot_id = job.params.get("snapshot_id", "")
        result["backup"] = job.params["backup"]
        result["snapshot_id"] = snapshot_id
        # The repository-wide check names the snapshots damage breaks; say whether this one is.
        result["snapshot_ok"] = snapshot_id not in (getattr(report, "broken_snapshots", None) or [])
    if not _report_ok(report):
        raise RunnerFailure("The repository verification found damage; see the job result.", "verify_failed", result)
    return result
