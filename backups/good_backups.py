"""Which backups are *good*: known to restore, judged from what the catalog has recorded.

A backup counts as good when it protects its volume (`selectors.completed_backups`: completed,
with a snapshot, not forgotten) and one of these is true:

* **verified**: a verify job that read data (`read_data_percent` > 0) started after the
  backup completed and kept its report, and no verify has ever named the snapshot in
  `broken_snapshots`. Such a verify read every pack never verified before
  (`engine.pack_selection`), so every pack the backup wrote was read and authenticated by
  it or by an earlier verify that also started after the backup completed (a damaged pack
  would have named the snapshot); the data the backup shares with older backups was read by
  earlier verifies and is read again within `VERIFY_REVERIFY_DAYS`; and the structure (every
  tree, every blob indexed) was checked;
* **restored**: a restore or drill of the whole snapshot succeeded after the last verify
  that named the snapshot broken, if any (a restore authenticates every blob it reads; a
  restore of some `paths` only proves nothing about the rest).

A verify that read no data says nothing good, and a failed job without a report (storage
unreachable) says nothing at all. Retention keeps the newest `Policy.keep_good` good
backups of each volume (`last_good_backups`, used by the prune runner).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from backups import selectors
from backups.models import Backup, Job, JobKind, JobStatus

# Candidate backups judged per query of their restores (a bound-parameter list).
BATCH = 200
#: Job kinds whose success reads a whole snapshot back (a drill is a restore that is checked).
READ_BACK_KINDS = (JobKind.RESTORE, JobKind.DRILL)


@dataclass(frozen=True)
class Evidence:
    """The job that showed a backup good: `how` is "verified", "restored" or "drilled"."""

    how: str
    job_id: str
    at: datetime


@dataclass(frozen=True)
class GoodBackup:
    backup: Backup
    evidence: Evidence


class Judge:
    """The verify history, read once and shared by every volume a prune looks at."""

    def __init__(self, *, newest_reading_verify: tuple[str, datetime, datetime] | None,
                 broken_at: dict[str, datetime]):
        # (job id, started, finished) of the newest data-reading verify that kept a report.
        self.newest_reading_verify = newest_reading_verify
        # {snapshot id: when the newest verify naming it broken finished}
        self.broken_at = broken_at

    @classmethod
    def load(cls) -> "Judge":
        newest, broken_at = None, {}
        reports = (Job.objects.filter(kind=JobKind.VERIFY, status__in=(JobStatus.SUCCEEDED, JobStatus.FAILED),
                                      started_at__isnull=False, result__has_key="report")
                   .order_by("-started_at")
                   .values_list("pk", "started_at", "finished_at", "result__read_data_percent",
                                "result__report__broken_snapshots"))
        for job_id, started, finished, percent, broken in reports.iterator(chunk_size=500):
            finished = finished or started
            if newest is None and _number(percent) > 0:
                newest = (str(job_id), started, finished)
            for snapshot_id in broken or ():
                if snapshot_id not in broken_at or broken_at[snapshot_id] < finished:
                    broken_at[snapshot_id] = finished
        return cls(newest_reading_verify=newest, broken_at=broken_at)

    def judge(self, backups: list[Backup]) -> dict:
        """{backup id: Evidence} for those of `backups` that are good."""
        reads = _read_backs([backup.pk for backup in backups])
        good = {}
        for backup in backups:
            broken_at = self.broken_at.get(backup.snapshot_id)
            restored = [evidence for evidence in reads.get(str(backup.pk), ())
                        if broken_at is None or evidence.at > broken_at]
            if restored:
                good[backup.pk] = max(restored, key=lambda evidence: evidence.at)
            elif broken_at is None and self.newest_reading_verify is not None:
                job_id, started, finished = self.newest_reading_verify
                if started > backup.completed_at:
                    good[backup.pk] = Evidence("verified", job_id, finished)
        return good

    def last_good(self, volume_id, count: int) -> list[GoodBackup]:
        """The newest `count` good backups of the volume, newest first."""
        if count <= 0:
            return []
        found: list[GoodBackup] = []
        candidates = selectors.newest_completed_backups(volume_id=volume_id).iterator(chunk_size=BATCH)
        while len(found) < count:
            batch = list(islice(candidates, BATCH))
            if not batch:
                break
            good = self.judge(batch)
            found.extend(GoodBackup(backup, good[backup.pk]) for backup in batch if backup.pk in good)
        return found[:count]


def last_good_backups(volume_id, count: int, *, judge: Judge | None = None) -> list[GoodBackup]:
    return (judge or Judge.load()).last_good(volume_id, count)


def _read_backs(backup_ids) -> dict[str, list[Evidence]]:
    """{backup id: [Evidence]} of the succeeded whole-snapshot restores and drills of them."""
    rows = (Job.objects.filter(kind__in=READ_BACK_KINDS, status=JobStatus.SUCCEEDED,
                               params__backup__in=[str(backup_id) for backup_id in backup_ids])
            .exclude(params__has_key="paths")
            .values_list("pk", "kind", "params__backup", "finished_at", "started_at"))
    found: dict[str, list[Evidence]] = {}
    for job_id, kind, backup_id, finished, started in rows:
        at = finished or started
        if at is not None:
            how = "drilled" if kind == JobKind.DRILL else "restored"
            found.setdefault(str(backup_id), []).append(Evidence(how, str(job_id), at))
    return found


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
