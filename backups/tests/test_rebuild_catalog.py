"""`manage.py rebuild_catalog`: the database is lost, the repository and the volumes' data are
not. Volumes are made and backed up through the platform's own job path (in-process, as the
Celery task runs it), the catalog rows are deleted, the command brings them back, a second
run changes nothing, and a rebuilt backup restores byte for byte through the platform."""

from __future__ import annotations

import shutil
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backups import runners, services
from backups.engine.format import ObjectType
from backups.models import Backup, BackupStatus, BackupTrigger, Job, JobStatus, Policy
from backups.rebuild import BACKUP_ID_NAMESPACE, PLACEHOLDER_DESCRIPTION
from backups.storage import open_repository
from volumes.models import Volume, VolumeStatus

pytestmark = pytest.mark.django_db

DB_FILES = {"base/1/16384": b"\x00\x01page" * 3000, "PG_VERSION": b"16\n", "conf/postgresql.conf": b"port = 5432\n"}
WEB_FILES = {"index.html": b"<h1>hello</h1>\n", "static/app.js": b"console.log(1)\n", "empty": b""}
VOLUME_FIELDS = ("name", "labels", "size_gb", "pool", "node", "rpo_hours_override", "created_at")
BACKUP_FIELDS = ("volume_id", "volume_name", "status", "trigger", "snapshot_id", "tags", "stats", "created_at",
                 "forgotten_at")


@pytest.fixture(autouse=True)
def own_volume_root(settings, tmp_path):
    """Volume folders of this test only: the rebuild lists the pool's folders."""
    settings.VOLUME_ROOT = tmp_path / "volumes"
    settings.VOLUME_ROOT.mkdir()
    return settings.VOLUME_ROOT


def back_up(volume, trigger=BackupTrigger.MANUAL) -> Backup:
    backup = services.trigger_backup(volume, trigger=trigger)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED, Job.objects.get(pk=backup.job_id).error
    backup.refresh_from_db()
    return backup


def restore(backup: Backup, **target) -> Job:
    job = services.start_restore(backup, **target)
    assert runners.execute(job.pk) == JobStatus.SUCCEEDED, Job.objects.get(pk=job.pk).error
    return job


def files_of(root) -> dict[str, bytes]:
    root = Path(root)
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def volumes_in_catalog() -> dict:
    return {volume.pk: {**{name: getattr(volume, name) for name in VOLUME_FIELDS},
                        "policy": volume.policy.name if volume.policy else None, "status": volume.status}
            for volume in Volume.objects.select_related("policy")}


def backups_in_catalog() -> dict:
    # Tags compared as a set: the manifest keeps them sorted, the runner in its own order.
    return {backup.pk: {**{name: getattr(backup, name) for name in BACKUP_FIELDS}, "tags": sorted(backup.tags)}
            for backup in Backup.objects.all()}


def lose_the_database() -> None:
    """What a new, migrated database holds of the catalog: no volume, backup or job, and only
    the default policy."""
    Backup.objects.all().delete()
    Job.objects.all().delete()
    Volume.objects.all().delete()
    Policy.objects.filter(is_default=False).delete()


def rebuild(*arguments) -> str:
    output = StringIO()
    call_command("rebuild_catalog", *arguments, stdout=output, stderr=StringIO())
    return output.getvalue()


def summary(output: str) -> dict[str, int]:
    line = output.strip().splitlines()[-1]
    return {key: int(value) for key, value in (item.split("=") for item in line.split(": ", 1)[1].split())}


def test_a_lost_catalog_comes_back_from_the_repository_and_its_backups_restore_byte_for_byte(
        own_repository, make_volume, sent_messages):
    nightly = Policy.objects.create(name="nightly", schedule="0 2 * * *", rpo_hours=6)
    database = make_volume("db-1", size_gb=5, files=DB_FILES, labels={"team": "data", "tier": "gold"},
                           policy=nightly, rpo_hours_override=12)
    web = make_volume("web", size_gb=2, files=WEB_FILES)
    first = back_up(database)
    Path(database.path, "PG_VERSION").write_bytes(b"17\n")
    Path(database.path, "base/1/16385").write_bytes(b"a new table")
    back_up(database, trigger=BackupTrigger.SCHEDULE)
    web_backup = back_up(web)
    volumes_before, backups_before = volumes_in_catalog(), backups_in_catalog()
    completed_before = {backup.pk: backup.completed_at for backup in Backup.objects.all()}

    lose_the_database()
    shutil.rmtree(web.path)  # web's disk went with it
    output = rebuild()

    assert summary(output) == {"manifests": 3, "volumes_created": 2, "volumes_kept": 0, "volumes_not_created": 0,
                               "volumes_data_missing": 1, "volumes_data_found": 0, "backups_created": 3,
                               "backups_kept": 0, "policies_created": 1, "other_snapshots": 0,
                               "unknown_folders": 0, "problems": 0}
    assert f"volume=db-1 id={database.pk} result=created status=available backups_created=2" in output
    assert "volume=web" in output and "status=data_missing" in output
    volumes_after = volumes_in_catalog()
    for volume_id, before in volumes_before.items():
        expected_status = VolumeStatus.DATA_MISSING if volume_id == web.pk else VolumeStatus.AVAILABLE
        assert volumes_after[volume_id] == {**before, "status": expected_status}
    assert backups_in_catalog() == backups_before
    for backup in Backup.objects.all():
        # Completed when the manifest was written: just before the job recorded it.
        assert backup.job_id is None and backup.started_at <= backup.completed_at <= completed_before[backup.pk]
    placeholder = Policy.objects.get(name="nightly")
    assert not placeholder.enabled and placeholder.description == PLACEHOLDER_DESCRIPTION
    rebuilt_web = Volume.objects.get(pk=web.pk)
    assert "is missing" in rebuilt_web.status_message and rebuilt_web.used_bytes == 0
    assert Volume.objects.get(pk=database.pk).used_bytes == sum(len(data) for data in files_of(database.path).values())

    again = rebuild()
    assert summary(again)["volumes_kept"] == 2 and summary(again)["backups_kept"] == 3
    assert all(summary(again)[key] == 0 for key in ("volumes_created", "backups_created", "policies_created"))
    assert volumes_in_catalog() == volumes_after and backups_in_catalog() == backups_before
    assert Policy.objects.count() == 2

    # The rebuilt catalog restores through the platform: the first backup of db-1 into a new
    # volume, and web's backup into web itself, which makes its folder again.
    restore(Backup.objects.get(pk=first.pk), new_volume_name="db-1-copy")
    assert files_of(Volume.objects.get(name="db-1-copy").path) == DB_FILES
    restore(Backup.objects.get(pk=web_backup.pk))
    rebuilt_web.refresh_from_db()
    assert rebuilt_web.status == VolumeStatus.AVAILABLE and rebuilt_web.status_message == ""
    assert files_of(rebuilt_web.path) == WEB_FILES and rebuilt_web.used_bytes == sum(map(len, WEB_FILES.values()))


def test_a_catalog_is_rebuilt_from_a_repository_on_s3(own_s3_repository, make_volume, sent_messages):
    """Manifests are read in parallel over the S3 client that django-storages built."""
    volumes = [make_volume(f"vol-{number}", files={"data.txt": b"on s3 %d" % number}) for number in range(3)]
    backups = [back_up(volume) for volume in volumes]
    lose_the_database()
    counts = summary(rebuild())
    assert (counts["manifests"], counts["volumes_created"], counts["backups_created"]) == (3, 3, 3)
    assert sorted(Volume.objects.values_list("name", flat=True)) == ["vol-0", "vol-1", "vol-2"]
    restore(Backup.objects.get(pk=backups[1].pk), new_volume_name="vol-1-copy")
    assert files_of(Volume.objects.get(name="vol-1-copy").path) == {"data.txt": b"on s3 1"}


def test_snapshots_written_before_manifests_carried_the_volume_are_rebuilt_from_source_and_tags(
        own_repository, settings, tmp_path):
    """Manifests of version 1 have only `source` and tags: the volume gets its id, its name
    when the `volume-name:` tag is there, and a quota that holds the data."""
    named_id, unnamed_id = uuid.uuid4(), uuid.uuid4()
    named_folder = Path(settings.VOLUME_ROOT) / str(named_id)
    named_folder.mkdir(parents=True)
    (named_folder / "data.bin").write_bytes(b"x" * 4096)
    unnamed_source = tmp_path / "gone"
    unnamed_source.mkdir()
    (unnamed_source / "notes.txt").write_bytes(b"notes")
    stray = Path(settings.VOLUME_ROOT) / str(uuid.uuid4())  # a volume never backed up
    stray.mkdir()
    repository = open_repository()
    try:
        named = repository.backup(str(named_folder), source=f"volume:{named_id}",
                                  tags=[f"volume:{named_id}", "job:1", "volume-name:legacy"])
        unnamed = repository.backup(str(unnamed_source), source=f"volume:{unnamed_id}", tags=[f"volume:{unnamed_id}"])
        repository.backup(str(unnamed_source), tags=["by-hand"])  # a CLI snapshot: not a volume's
    finally:
        repository.close()

    output = rebuild()

    counts = summary(output)
    assert (counts["manifests"], counts["other_snapshots"], counts["volumes_created"], counts["backups_created"]) \
        == (3, 1, 2, 2)
    assert f"folder={stray} result=no_volume" in output and counts["unknown_folders"] == 1
    legacy = Volume.objects.get(pk=named_id)
    assert (legacy.name, legacy.status, legacy.labels, legacy.policy, legacy.size_gb, legacy.used_bytes) \
        == ("legacy", VolumeStatus.AVAILABLE, {}, None, 1, 4096)
    recovered = Volume.objects.get(pk=unnamed_id)
    assert recovered.name == f"recovered-{unnamed_id.hex}" and recovered.status == VolumeStatus.DATA_MISSING
    backup = Backup.objects.get(snapshot_id=unnamed.snapshot_id)
    assert backup.pk == uuid.uuid5(BACKUP_ID_NAMESPACE, unnamed.snapshot_id)
    assert (backup.volume_name, backup.trigger, backup.status) == (recovered.name, BackupTrigger.MANUAL,
                                                                   BackupStatus.COMPLETED)
    assert Backup.objects.get(snapshot_id=named.snapshot_id).stats["files"] == 1

    # The disk that held the unnamed volume is mounted again: the next run finds its data.
    shutil.copytree(unnamed_source, Path(settings.VOLUME_ROOT) / str(unnamed_id))
    again = summary(rebuild())
    assert (again["volumes_data_found"], again["volumes_created"], again["backups_created"]) == (1, 0, 0)
    recovered.refresh_from_db()
    assert recovered.status == VolumeStatus.AVAILABLE and recovered.used_bytes == len(b"notes")


def test_a_partial_catalog_keeps_its_rows_and_gets_only_what_it_lacks(own_repository, make_volume, sent_messages):
    kept = make_volume("kept", files={"a": b"a"}, labels={"old": "labels"})
    older = back_up(kept)
    newer = back_up(kept)
    lost = make_volume("reused-name", files={"b": b"b"})
    lost_backup = back_up(lost)
    # The restored database dump is older than the repository: one backup row and a volume
    # row are missing, and meanwhile someone made a new volume with the lost one's name.
    Backup.objects.filter(pk=older.pk).delete()
    Volume.objects.filter(pk=kept.pk).update(labels={"changed": "since"})
    Volume.objects.filter(pk=lost.pk).delete()
    newcomer = make_volume("reused-name")

    output = rebuild()

    counts = summary(output)
    assert (counts["volumes_kept"], counts["volumes_not_created"], counts["backups_created"], counts["backups_kept"]) \
        == (1, 1, 1, 2)
    assert f"volume=reused-name id={lost.pk} result=not_created" in output
    assert Volume.objects.get(pk=kept.pk).labels == {"changed": "since"}  # kept as it was
    assert Volume.objects.get(name="reused-name").pk == newcomer.pk and not Volume.objects.filter(pk=lost.pk).exists()
    assert Backup.objects.get(pk=older.pk).snapshot_id == older.snapshot_id
    assert Backup.objects.get(pk=newer.pk).job_id == newer.job_id  # untouched
    orphan = Backup.objects.get(pk=lost_backup.pk)
    assert (orphan.volume_id, orphan.volume_name) == (lost.pk, "reused-name")
    assert Backup.objects.count() == 3


def test_a_dry_run_writes_nothing_and_reports_what_a_run_would_do(own_repository, make_volume, sent_messages):
    back_up(make_volume("vol-a", files={"a": b"a"}))
    lose_the_database()
    output = rebuild("--dry-run")
    assert "dry run, nothing written" in output and summary(output)["volumes_created"] == 1
    assert not Volume.objects.exists() and not Backup.objects.exists()


def test_unreadable_manifests_are_reported_and_the_rest_is_rebuilt(own_repository, make_volume, sent_messages):
    back_up(make_volume("vol-a", files={"a": b"a"}))
    repository = open_repository()
    try:
        repository.backend.put("snapshots/" + "ab" * 32, b"SPBK\x01\x05 not an envelope")
        sealed = repository.cipher.seal_envelope(ObjectType.SNAPSHOT, (
            b'{"version": 2, "source": "volume:%s", "tree": "%s", "time": "2026-01-01T00:00:00+00:00", '
            b'"metadata": {"catalog": {"version": 99}}}' % (str(uuid.uuid4()).encode(), b"00" * 32)))
        repository.backend.put("snapshots/" + "cd" * 32, sealed)  # a record from a later release
    finally:
        repository.close()
    lose_the_database()
    errors = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("rebuild_catalog", stdout=StringIO(), stderr=errors)
    assert raised.value.returncode == 1
    assert f"snapshot {'ab' * 32}" in errors.getvalue() and "version 99" in errors.getvalue()
    assert Volume.objects.filter(name="vol-a").exists() and Backup.objects.count() == 1


def test_no_repository_at_the_configured_location_is_an_error_and_none_is_created(own_repository):
    with pytest.raises(CommandError, match="no repository") as raised:
        rebuild()
    assert raised.value.returncode == 2
    assert not (own_repository / "config").exists()
