"""List pagination: `?cursor=` walks every row exactly once in the list's order (ties
included; rows added mid-walk never repeat one), `previous` walks back, page numbers keep
working, and a bad cursor is a 400 in the platform's error shape."""

from __future__ import annotations

import datetime
from urllib.parse import urlparse

import pytest

from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus
from monitoring.tests.factories import NOW, make_volume

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"} and body["code"] == code, body
    return body


def path_of(link: str) -> str:
    parts = urlparse(link)
    return f"{parts.path}?{parts.query}"


def walk(client, first: str, direction: str = "next") -> list[dict]:
    """Follow `direction` links from `first`; every page is checked for the cursor shape."""
    rows, link, pages = [], first, 0
    while link:
        response = client.get(link)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"next", "previous", "results"}
        rows.extend(body["results"])
        link = path_of(body[direction]) if body[direction] else None
        pages += 1
        assert pages < 100, "the walk does not end"
    return rows


@pytest.fixture
def backups():
    """Nine backups of three volumes; four share one created_at (ties in the first key)."""
    made = []
    for number in range(9):
        volume = make_volume(f"vol-{number % 3}") if number < 3 else made[number % 3].volume
        backup = Backup.objects.create(volume=volume, volume_name=volume.name, status=BackupStatus.COMPLETED,
                                       snapshot_id=f"snap-{number}", completed_at=NOW)
        created = NOW - datetime.timedelta(minutes=0 if number in (2, 3, 5, 7) else number * 10)
        Backup.objects.filter(pk=backup.pk).update(created_at=created)
        backup.refresh_from_db()
        made.append(backup)
    return made


def expected_order(backups) -> list[str]:
    return [str(backup.id) for backup in sorted(backups, key=lambda backup: (-backup.created_at.timestamp(),
                                                                            str(backup.id)))]


def test_a_cursor_walk_returns_every_backup_once_in_the_list_order(api, backups):
    client = api("read")
    rows = walk(client, "/api/v1/backups?cursor=&page_size=2")
    assert [row["id"] for row in rows] == expected_order(backups)


def test_the_cursor_walk_matches_the_page_number_walk(api, backups):
    client = api("read")
    by_pages = []
    for page in range(1, 4):
        body = client.get(f"/api/v1/backups?page={page}&page_size=4").json()
        assert body["count"] == 9
        by_pages.extend(row["id"] for row in body["results"])
    assert by_pages == [row["id"] for row in walk(client, "/api/v1/backups?cursor=&page_size=4")]


def test_previous_links_walk_back_to_the_first_page(api, backups):
    client = api("read")
    link = "/api/v1/backups?cursor=&page_size=2"
    for _ in range(3):
        link = path_of(client.get(link).json()["next"])
    last_page = client.get(link).json()
    walked_back = walk(client, path_of(last_page["previous"]), direction="previous")
    # Pages come back newest-last; within a page rows keep the list order.
    assert sorted(row["id"] for row in walked_back) == sorted(expected_order(backups)[:6])


def test_a_backup_created_during_a_walk_never_repeats_a_row(api, backups):
    # Distinct times: within a run of equal first keys the position is an offset (see
    # storage_platform.pagination), which an insert into that same run can shift.
    for number, backup in enumerate(backups):
        backup.created_at = NOW - datetime.timedelta(minutes=number)
        Backup.objects.filter(pk=backup.pk).update(created_at=backup.created_at)
    client = api("read")
    first = client.get("/api/v1/backups?cursor=&page_size=3").json()
    volume = backups[0].volume
    Backup.objects.create(volume=volume, volume_name=volume.name, status=BackupStatus.QUEUED)
    rest = walk(client, path_of(first["next"]))
    ids = [row["id"] for row in first["results"]] + [row["id"] for row in rest]
    assert len(ids) == len(set(ids))
    assert ids == expected_order(backups)


def test_filters_apply_to_cursor_pages(api, backups):
    client = api("read")
    rows = walk(client, "/api/v1/backups?cursor=&page_size=2&volume=vol-1")
    assert [row["id"] for row in rows] == expected_order([b for b in backups if b.volume_name == "vol-1"])
    rows = walk(client, f"/api/v1/volumes/{backups[2].volume.id}/backups?cursor=&page_size=1")
    assert [row["id"] for row in rows] == expected_order([b for b in backups if b.volume_name == "vol-2"])


def test_volume_and_job_lists_walk_by_cursor(api):
    for number in range(7):
        make_volume(f"vol-{number}", labels={"team": "a" if number % 2 else "b"})
    Job.objects.bulk_create([Job(kind=JobKind.VERIFY, status=JobStatus.SUCCEEDED) for _ in range(5)])
    client = api("read")
    names = [row["name"] for row in walk(client, "/api/v1/volumes?cursor=&page_size=2&label=team=a")]
    assert names == ["vol-1", "vol-3", "vol-5"]
    names = [row["name"] for row in walk(client, "/api/v1/volumes?cursor=&page_size=3")]
    assert names == [f"vol-{number}" for number in range(7)]
    jobs = walk(client, "/api/v1/jobs?cursor=&page_size=2")
    assert sorted(job["id"] for job in jobs) == sorted(str(pk) for pk in Job.objects.values_list("id", flat=True))


def test_page_numbers_keep_working_with_a_count(api, backups):
    body = api("read").get("/api/v1/backups?page=2&page_size=4").json()
    assert body["count"] == 9 and len(body["results"]) == 4
    assert "page=3" in body["next"] and body["previous"]


def test_a_deep_page_steps_over_keys_and_annotates_only_its_own_rows(api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for number in range(12):
        make_volume(f"vol-{number:02d}", labels={"team": "a" if number % 3 else "b"})
    client = api("read")
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/api/v1/volumes?page=3&page_size=4").json()
    assert body["count"] == 12 and [row["name"] for row in body["results"]] == \
        ["vol-08", "vol-09", "vol-10", "vol-11"]
    # the OFFSET query selects keys only: the last-backup subqueries are not in it
    stepping = [query["sql"] for query in queries.captured_queries if "OFFSET" in query["sql"]]
    assert len(stepping) == 1 and "backups_backup" not in stepping[0], stepping
    # every page number, filtered too, gives the rows of the list in its order
    walked = []
    for page in (1, 2, 3):
        walked += [row["name"] for row in client.get(
            f"/api/v1/volumes?page={page}&page_size=3&label=team=a").json()["results"]]
    assert walked == [f"vol-{number:02d}" for number in range(12) if number % 3]


@pytest.mark.parametrize("query", ["cursor=not-a-cursor", "cursor=%00", "cursor=bz0xJnA9eA%3D%3D"])
def test_a_bad_cursor_is_a_400(api, backups, query):
    body = assert_error(api("read").get(f"/api/v1/backups?{query}"), 400, "validation_error")
    assert "cursor" in body["detail"]


def test_cursor_and_page_together_are_a_400(api, backups):
    assert_error(api("read").get("/api/v1/backups?cursor=&page=2"), 400, "validation_error")


def test_page_size_is_capped_in_cursor_form(api, backups):
    body = api("read").get("/api/v1/backups?cursor=&page_size=100000").json()
    assert len(body["results"]) == 9 and body["next"] is None
