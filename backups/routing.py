"""Which Celery queue a job goes to.

* backup and restore → `backup`, or `backup.<node>` when the volume lives on a node-local
  pool (`Volume.node`), so that only a worker on that node (started with
  `-Q backup.<node>`) touches the volume's directory;
* verify, prune, drills and replication → `maintenance`, so long repository scans never delay backups;
* everything else → `default`.

The queue is decided when the job is created and stored in `Job.queue`; re-sends and
retries reuse it, so a job never wanders to a worker that cannot reach its data.
"""

from __future__ import annotations

from backups.models import JobKind

BACKUP_QUEUE = "backup"
MAINTENANCE_QUEUE = "maintenance"
DEFAULT_QUEUE = "default"

_DATA_KINDS = (JobKind.BACKUP, JobKind.RESTORE)
_MAINTENANCE_KINDS = (JobKind.VERIFY, JobKind.PRUNE, JobKind.DRILL, JobKind.REPLICATE)


def node_queue(node: str) -> str:
    """The backup queue of one node: `backup.<node>`."""
    return f"{BACKUP_QUEUE}.{node}"


def queue_for(kind: str, volume=None) -> str:
    """The queue for a job of `kind` working on `volume` (None for repository-wide jobs)."""
    if kind in _DATA_KINDS:
        node = getattr(volume, "node", "") if volume is not None else ""
        return node_queue(node) if node else BACKUP_QUEUE
    if kind in _MAINTENANCE_KINDS:
        return MAINTENANCE_QUEUE
    return DEFAULT_QUEUE


def worker_queues(node: str | None = None) -> list[str]:
    """The queues a general worker should consume; with `node`, also that node's backups."""
    queues = [BACKUP_QUEUE, MAINTENANCE_QUEUE, DEFAULT_QUEUE]
    if node:
        queues.insert(1, node_queue(node))
    return queues
