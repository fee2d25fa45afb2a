"""Simultaneous triggers for one volume from several threads (as from several API processes):
exactly one backup is queued, every other caller gets 409 naming it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from backups import services
from backups.errors import BackupInProgress
from backups.models import Backup, BackupTrigger, Job


@pytest.mark.django_db(transaction=True)
def test_racing_triggers_queue_exactly_one_backup(make_volume, sent_messages):
    volume = make_volume("vol-race")
    start = threading.Barrier(6)
    outcomes: list = []
    lock = threading.Lock()

    def trigger():
        try:
            start.wait(10)
            result = services.trigger_backup(volume, trigger=BackupTrigger.API)
        except BackupInProgress as error:
            result = error
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=trigger) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [item for item in outcomes if isinstance(item, Backup)]
    conflicts = [item for item in outcomes if isinstance(item, BackupInProgress)]
    assert len(outcomes) == 6 and len(winners) == 1 and len(conflicts) == 5
    assert all(error.detail["job"] == str(winners[0].job_id) for error in conflicts if error.detail.get("job"))
    assert Backup.objects.filter(volume_id=volume.pk).count() == 1 and Job.objects.count() == 1
