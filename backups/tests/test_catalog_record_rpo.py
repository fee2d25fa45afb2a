"""The RPO override in the catalog record of a snapshot: minutes, with whole hours for older readers."""

from __future__ import annotations

import datetime as dt
import uuid

from backups.catalog_records import manifest_metadata, read_record
from backups.engine.snapshot import SnapshotInfo
from backups.models import Backup
from volumes.models import Volume

VOLUME_ID = uuid.UUID("11111111-0000-4000-8000-000000000001")


def snapshot_of(metadata: dict) -> SnapshotInfo:
    return SnapshotInfo(id="ab" * 32, time=dt.datetime(2026, 12, 1, tzinfo=dt.UTC), source=f"volume:{VOLUME_ID}",
                        tags=[], tree="cd" * 32, metadata=metadata)


def test_a_15_minute_override_is_recorded_in_minutes_and_read_back():
    volume = Volume(id=VOLUME_ID, name="orders-db", size_gb=1, rpo_minutes_override=15)
    metadata = manifest_metadata(volume, Backup(id=uuid.uuid4(), volume=volume))
    assert metadata["catalog"]["volume"]["rpo_minutes_override"] == 15
    assert metadata["catalog"]["volume"]["rpo_hours_override"] is None  # not whole hours: older readers skip it
    assert read_record(snapshot_of(metadata)).rpo_minutes_override == 15


def test_a_record_written_before_minutes_is_read_from_its_hours():
    volume = Volume(id=VOLUME_ID, name="web-data", size_gb=1, rpo_hours_override=12)
    metadata = manifest_metadata(volume, Backup(id=uuid.uuid4(), volume=volume))
    assert metadata["catalog"]["volume"]["rpo_hours_override"] == 12
    del metadata["catalog"]["volume"]["rpo_minutes_override"]
    assert read_record(snapshot_of(metadata)).rpo_minutes_override == 720
