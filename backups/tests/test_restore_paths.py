"""Restoring only some paths of a snapshot into a new volume: the API's validation and the
runner against the real engine and a real local repository (in-process, as in test_runners)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backups import runners, services
from backups.models import Job, JobKind, JobStatus
from backups.tests.test_runners import back_up
from volumes.models import Volume

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_repository_for_every_test(own_repository):
    return own_repository


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(path.relative_to(root)): (path.read_bytes() if path.is_file() else None)
            for path in sorted(root.rglob("*"))}


def test_only_the_named_paths_land_in_the_new_volume_at_their_own_place(make_volume, sent_messages):
    source = make_volume("src", files={"etc/app.conf": b"conf", "etc/other": b"x", "data/a/1.bin": b"one",
                                       "data/a/2.bin": b"two", "data/b.bin": b"b", "top.txt": b"top"})
    backup = back_up(source)
    job = services.start_restore(backup, new_volume_name="src-partial", paths=["/etc/app.conf", "data/a", "/etc/app.conf"])
    assert job.params["paths"] == ["/etc/app.conf", "/data/a"]
    assert runners.execute(job.pk) == JobStatus.SUCCEEDED, Job.objects.get(pk=job.pk).error
    copy = Volume.objects.get(name="src-partial")
    assert copy.status == "available"
    assert tree(Path(copy.path)) == {"data": None, "data/a": None, "data/a/1.bin": b"one", "data/a/2.bin": b"two",
                                     "etc": None, "etc/app.conf": b"conf"}


def test_a_path_missing_from_the_snapshot_fails_the_job_and_the_new_volume(make_volume, sent_messages):
    backup = back_up(make_volume("src", files={"a.txt": b"a"}))
    job = services.start_restore(backup, new_volume_name="src-missing", paths=["/no/such/file"])
    assert runners.execute(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error_code == "path_not_found" and Volume.objects.get(name="src-missing").status == "error"


@pytest.mark.parametrize("body, field", [
    ({"new_volume_name": "copy", "paths": ["../etc"]}, None),
    ({"new_volume_name": "copy", "paths": "/etc"}, "paths"),
    ({"new_volume_name": "copy", "paths": [5]}, "paths"),
    ({"paths": ["/etc"]}, "paths"),
])
def test_bad_paths_are_a_400_naming_the_problem(api, make_volume, body, field, sent_messages):
    from backups.tests.test_api_backups import completed_backup

    backup = completed_backup(make_volume("src"))
    response = api("admin").post(f"/api/v1/backups/{backup.pk}/restore", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert set(error) == {"code", "message", "detail"}
    if field:
        assert field in error["detail"]
    assert not Job.objects.filter(kind=JobKind.RESTORE).exists()
    assert not Volume.objects.filter(name="copy").exists()
