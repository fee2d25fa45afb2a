"""Queues: backups and restores to `backup` or the volume's node queue, maintenance apart."""

from __future__ import annotations

import pytest

from backups import routing, services
from backups.models import BackupTrigger, JobKind


class FakeVolume:
    def __init__(self, node=""):
        self.node = node


@pytest.mark.parametrize("kind, node, queue", [
    (JobKind.BACKUP, "", "backup"),
    (JobKind.RESTORE, "", "backup"),
    (JobKind.BACKUP, "node-7", "backup.node-7"),
    (JobKind.RESTORE, "node-7", "backup.node-7"),
    (JobKind.VERIFY, "", "maintenance"),
    (JobKind.PRUNE, "", "maintenance"),
    (JobKind.DRILL, "", "maintenance"),
    ("report", "", "default"),
])
def test_queue_for_each_kind(kind, node, queue):
    assert routing.queue_for(kind, FakeVolume(node)) == queue


def test_a_node_local_worker_consumes_its_node_queue():
    assert routing.worker_queues() == ["backup", "maintenance", "default"]
    assert routing.worker_queues("node-7") == ["backup", "backup.node-7", "maintenance", "default"]


@pytest.mark.django_db
def test_a_backup_of_a_node_local_volume_is_sent_to_that_node(make_volume, sent_messages,
                                                              django_capture_on_commit_callbacks):
    volume = make_volume("vol-local", node="node-7")
    with django_capture_on_commit_callbacks(execute=True):
        backup = services.trigger_backup(volume, trigger=BackupTrigger.SCHEDULE)
    assert backup.job.queue == "backup.node-7"
    assert sent_messages == [(str(backup.job_id), "backup.node-7", None)]
