"""Jobs: every long operation is a row with a state machine; Celery carries only its id.

One concern per module:

* `state`: the transitions (claim, succeed, fail, cancel, requeue, retry) and the rows that
  mirror a job (its Backup, a restore's target volume);
* `publish`: sending the message after commit, by task name;
* `heartbeat`: `JobContext`, the running job's progress, liveness and cancel flag;
* `retry`: the backoff policy;
* `identity`: which worker process this is, and whether a recorded one still runs.

Callers use the names below; tests that replace the publisher or the retry policy patch
`publish.publisher` and `retry.retry_policy`.
"""

from backups.jobs.heartbeat import JobContext
from backups.jobs.identity import worker_identity
from backups.jobs.publish import enqueue, send
from backups.jobs.retry import RetryPolicy
from backups.jobs.state import (
    cancelled,
    claim,
    fail,
    request_cancel,
    requeue,
    retry_or_fail,
    succeed,
    take_over_dead_local_worker,
)

__all__ = [
    "JobContext", "RetryPolicy", "cancelled", "claim", "enqueue", "fail", "request_cancel", "requeue",
    "retry_or_fail", "send", "succeed", "take_over_dead_local_worker", "worker_identity",
]
