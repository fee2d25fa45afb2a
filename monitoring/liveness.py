"""The background components behind the API, as `/ready` reports them in `components`.

They say whether the platform *does its work*, not whether the API can serve traffic, so
they never change `/ready`'s status code (a load balancer must not drop an API process
because beat stopped). Each answers `{"status": ..., ...}`:

* `workers`: from the heartbeats every worker writes (`monitoring.heartbeat`). `ok` when at
  least one worker beat within JOB_STALE_AFTER_SECONDS and none went silent; `degraded` when
  some worker went silent without a clean stop (crashed or hung; listed in `silent`, kept
  for a day); `failing` when no worker is alive.
* `beat`: from the scheduler's last tick (`monitoring.scheduler`). `ok` when it ticked
  within JOB_STALE_AFTER_SECONDS; `failing` when its tick is older, it stopped, or it never
  ticked (a site that schedules with system cron instead of beat sees `failing` here).
* `verify`: whether the repository was verified as its policies' verify schedules ask. For
  each enabled policy with a verify schedule, the latest scheduled run at least
  VERIFY_GRACE ago is *due*; a verify job created at or after it (succeeded, queued or
  running: a long verify is not late) satisfies it. `failing` when a policy's due run has
  no such job, or the newest finished verify failed (damage was found); `unscheduled` when
  no policy verifies. A policy created after its due run is not late.

Times are injected (`now=`) so tests age rows without sleeping.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.utils import timezone

from backups.models import ACTIVE_JOB_STATUSES, FINISHED_JOB_STATUSES, Job, JobKind, JobStatus, Policy
from backups.scheduling import cron
from monitoring.catalog import HEARTBEAT_RETENTION
from monitoring.models import SchedulerTick, WorkerHeartbeat
from monitoring.scheduler import SCHEDULER_NAME

# Beat creates a scheduled verify job within seconds of its run time; this covers a beat
# that was briefly late (restart, busy database) before the run counts as missed.
VERIFY_GRACE = datetime.timedelta(minutes=15)


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _stale_after() -> int:
    return int(getattr(settings, "JOB_STALE_AFTER_SECONDS", 120))


def workers(now: datetime.datetime) -> dict:
    stale_after = _stale_after()
    rows = WorkerHeartbeat.objects.filter(stopped_at__isnull=True, last_seen_at__gte=now - HEARTBEAT_RETENTION)
    alive, silent = [], []
    for row in rows:
        age = (now - row.last_seen_at).total_seconds()
        (alive if age <= stale_after else silent).append({"worker": row.worker, "last_seen_at": _iso(row.last_seen_at),
                                                          "age_seconds": round(max(age, 0.0), 1)})
    status = "failing" if not alive else ("degraded" if silent else "ok")
    return {"status": status, "alive": len(alive), "silent": silent, "stale_after_seconds": stale_after}


def beat(now: datetime.datetime) -> dict:
    stale_after = _stale_after()
    row = SchedulerTick.objects.filter(name=SCHEDULER_NAME).first()
    if row is None:
        return {"status": "failing", "reason": "beat has never ticked", "last_tick_at": None,
                "stale_after_seconds": stale_after}
    age = (now - row.last_tick_at).total_seconds()
    body = {"last_tick_at": _iso(row.last_tick_at), "age_seconds": round(max(age, 0.0), 1),
            "hostname": row.hostname, "stale_after_seconds": stale_after}
    if row.stopped_at is not None:
        return {"status": "failing", "reason": f"beat stopped at {_iso(row.stopped_at)}", **body}
    if age > stale_after:
        return {"status": "failing", "reason": f"beat's last tick is {age:.0f} s old", **body}
    return {"status": "ok", **body}


def _due_run(policy: Policy, now: datetime.datetime) -> datetime.datetime | None:
    try:
        due = cron.previous_run(cron.parse(policy.verify_schedule, policy.timezone), now - VERIFY_GRACE)
    except cron.InvalidSchedule:
        return None
    return due if due >= policy.created_at else None


def verify(now: datetime.datetime) -> dict:
    verifies = Job.objects.filter(kind=JobKind.VERIFY)
    last_success = verifies.filter(status=JobStatus.SUCCEEDED).order_by("-finished_at").first()
    last_finished = verifies.filter(status__in=FINISHED_JOB_STATUSES).order_by("-finished_at").first()
    newest_started = (verifies.filter(status__in=(JobStatus.SUCCEEDED, *ACTIVE_JOB_STATUSES))
                      .order_by("-created_at").values_list("created_at", flat=True).first())
    body = {"last_succeeded_at": _iso(last_success.finished_at if last_success else None)}
    if last_finished is not None and last_finished.status == JobStatus.FAILED:
        body.update(status="failing", reason=f"the newest verify job {last_finished.pk} failed: "
                                             f"{(last_finished.error or last_finished.error_code)[:200]}")
    schedules = []
    for policy in Policy.objects.filter(enabled=True).exclude(verify_schedule="").order_by("name"):
        due = _due_run(policy, now)
        late = due is not None and (newest_started is None or newest_started < due)
        schedules.append({"policy": policy.name, "schedule": policy.verify_schedule, "timezone": policy.timezone,
                          "due_run": _iso(due), "late": late})
    body["schedules"] = schedules
    late = [entry for entry in schedules if entry["late"]]
    if "status" not in body:
        if late:
            body.update(status="failing", reason="no verify since the scheduled run of " + ", ".join(
                f"policy {entry['policy']} at {entry['due_run']}" for entry in late))
        else:
            body["status"] = "ok" if schedules else "unscheduled"
    return body


def components(now: datetime.datetime | None = None) -> dict:
    now = now or timezone.now()
    return {"workers": workers(now), "beat": beat(now), "verify": verify(now)}
