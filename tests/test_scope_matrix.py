"""The scope matrix: every route of the role matrix, called by scoped admin tokens.

An admin token (so the role never refuses) limited to volumes `other-*` walks every route
with the ids of a volume, backup and job that are *not* in its scope: volume-bearing routes
answer 404 (as for a volume that does not exist), lists are empty of them, and routes that
reach past any volume (tokens, audit, repository keys, repository-wide verify, creating a
volume, policy changes) answer 403 `outside_token_scope`. An admin token limited to the
verb `read` gets 403 `verb_not_in_scope` for every non-GET route and no 403 for GETs.

`EXPECTED_SCOPED_OUTCOME` must name every route of the role matrix, so a new endpoint has to
state what a volume-limited token sees there.
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from tests.test_role_matrix import CASES, EXPECTED_MINIMUM_ROLE

HIDDEN = "hidden"  # 404: the object is outside the scope
LIST = "list"  # 200 and none of the out-of-scope rows
OUTSIDE = "outside"  # 403 outside_token_scope
ALLOWED = "allowed"  # not 403: the scope does not refuse it (a made-up policy id is still 404)

EXPECTED_SCOPED_OUTCOME: dict[tuple[str, str], str] = {
    ("/api/v1/tokens", "GET"): OUTSIDE,
    ("/api/v1/tokens", "POST"): OUTSIDE,
    ("/api/v1/tokens/{pk}", "GET"): OUTSIDE,
    ("/api/v1/tokens/{pk}", "DELETE"): OUTSIDE,
    ("/api/v1/audit", "GET"): OUTSIDE,
    ("/api/v1/audit/{pk}", "GET"): OUTSIDE,
    ("/api/v1/backups", "GET"): LIST,
    ("/api/v1/backups", "POST"): HIDDEN,
    ("/api/v1/backups/{pk}", "GET"): HIDDEN,
    ("/api/v1/backups/{pk}", "DELETE"): HIDDEN,
    ("/api/v1/backups/{pk}/restore", "POST"): HIDDEN,
    ("/api/v1/backups/{pk}/verify", "POST"): HIDDEN,
    ("/api/v1/backups/{pk}/drill", "POST"): HIDDEN,
    ("/api/v1/backups/{pk}/files", "GET"): HIDDEN,
    ("/api/v1/backups/{pk}/download", "GET"): HIDDEN,
    ("/api/v1/backup", "POST"): HIDDEN,
    ("/api/v1/verify", "POST"): OUTSIDE,
    ("/api/v1/volumes/{id}/backups", "GET"): HIDDEN,
    ("/api/v1/volumes/{id}/backups", "POST"): HIDDEN,
    ("/api/v1/jobs", "GET"): LIST,
    ("/api/v1/jobs/{pk}", "GET"): HIDDEN,
    ("/api/v1/jobs/{pk}/cancel", "POST"): HIDDEN,
    ("/api/v1/repository-keys", "GET"): OUTSIDE,
    ("/api/v1/repository-keys", "POST"): OUTSIDE,
    ("/api/v1/repository-keys/rotate", "POST"): OUTSIDE,
    ("/api/v1/repository-keys/{pk}", "DELETE"): OUTSIDE,
    ("/api/v1/policies", "GET"): ALLOWED,
    ("/api/v1/policies", "POST"): OUTSIDE,
    ("/api/v1/policies/{pk}", "GET"): ALLOWED,
    ("/api/v1/policies/{pk}", "PUT"): OUTSIDE,
    ("/api/v1/policies/{pk}", "PATCH"): OUTSIDE,
    ("/api/v1/policies/{pk}", "DELETE"): OUTSIDE,
    ("/api/v1/policies/{pk}/replicate", "POST"): OUTSIDE,  # copies every volume of the policy
    ("/api/v1/replication-targets", "GET"): ALLOWED,
    ("/api/v1/volumes", "GET"): LIST,
    ("/api/v1/volumes", "POST"): OUTSIDE,
    ("/api/v1/volumes/{id}", "GET"): HIDDEN,
    ("/api/v1/volumes/{id}", "PUT"): HIDDEN,
    ("/api/v1/volumes/{id}", "PATCH"): HIDDEN,
    ("/api/v1/volumes/{id}", "DELETE"): HIDDEN,
    ("/api/v1/volumes/{id}/refresh-usage", "POST"): HIDDEN,
    ("/api/v1/volumes/{id}/files", "GET"): HIDDEN,
    ("/api/v1/volumes/{id}/files/{file_path}", "GET"): HIDDEN,
    ("/api/v1/volumes/{id}/files/{file_path}", "PUT"): HIDDEN,
    ("/api/v1/volumes/{id}/files/{file_path}", "DELETE"): HIDDEN,
}

SCOPED_CASES = [case for case in CASES if case[:2] in EXPECTED_MINIMUM_ROLE]


def test_every_route_of_the_role_matrix_states_its_scoped_outcome():
    missing = sorted(set(EXPECTED_MINIMUM_ROLE) - set(EXPECTED_SCOPED_OUTCOME))
    stale = sorted(set(EXPECTED_SCOPED_OUTCOME) - set(EXPECTED_MINIMUM_ROLE))
    assert not missing, f"Routes missing from EXPECTED_SCOPED_OUTCOME: {missing}"
    assert not stale, f"EXPECTED_SCOPED_OUTCOME lists routes that no longer exist: {stale}"


@pytest.fixture
def outside_objects(make_volume):
    """A volume `mine` (with a completed backup and its job) outside the scoped tokens' reach,
    and a volume `other-1` inside it."""
    from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus

    mine = make_volume("mine", files={"a.txt": b"alpha"}, labels={"team": "a"})
    make_volume("other-1", labels={"team": "b"})
    job = Job.objects.create(kind=JobKind.BACKUP, volume=mine, status=JobStatus.SUCCEEDED, queue="backup",
                             finished_at=timezone.now())
    backup = Backup.objects.create(volume=mine, volume_name=mine.name, job=job, status=BackupStatus.COMPLETED,
                                   snapshot_id="snap-1", completed_at=timezone.now())
    return {"volume": mine, "backup": backup, "job": job}


def concrete_url(route: str, sample_url: str, objects: dict) -> str:
    """The route with the out-of-scope objects' ids where it names a volume, backup or job."""
    if "{" not in route:
        return sample_url
    url = route.replace("{id}", str(objects["volume"].id)).replace("{file_path}", "a.txt")
    if route.startswith("/api/v1/backups/"):
        return url.replace("{pk}", str(objects["backup"].pk))
    if route.startswith("/api/v1/jobs/"):
        return url.replace("{pk}", str(objects["job"].pk))
    return sample_url if "{pk}" in url else url


def call(client, method: str, url: str, objects: dict):
    if method in ("POST", "PUT", "PATCH"):
        # A body naming the out-of-scope volume, for the triggers that take it there.
        return getattr(client, method.lower())(url, {"volume": str(objects["volume"].id)}, format="json")
    return getattr(client, method.lower())(url)


def body_start(response) -> bytes:
    return b"<streamed>" if response.streaming else response.content[:200]


@pytest.fixture(params=SCOPED_CASES, ids=lambda case: f"{case[0]}-{case[1]}")
def case(request, settings, tmp_path, outside_objects) -> tuple[str, str, str]:
    """(route, method, URL naming the out-of-scope objects) for each route of the matrix."""
    # An endpoint may switch maintenance mode on: keep that switch inside this test.
    settings.MAINTENANCE_FILE = tmp_path / "maintenance"
    route, method, sample_url = request.param
    return route, method, concrete_url(route, sample_url, outside_objects)


@pytest.mark.django_db
def test_a_token_scoped_to_other_volumes_cannot_see_or_touch_this_one(case, outside_objects, scoped_api):
    route, method, url = case
    expected = EXPECTED_SCOPED_OUTCOME[(route, method)]
    clients = {"by name": scoped_api("admin", name="by-name", volumes=["other-*"]),
               "by label": scoped_api("admin", name="by-label", label_selector="team=b")}
    for how, client in clients.items():
        response = call(client, method, url, outside_objects)
        described = f"{method} {url} scoped {how}: {response.status_code} {body_start(response)!r}"
        if expected == HIDDEN:
            assert response.status_code == 404, described
            assert response.json()["code"] in ("volume_not_found", "backup_not_found", "job_not_found"), described
        elif expected == OUTSIDE:
            assert response.status_code == 403 and response.json()["code"] == "outside_token_scope", described
        elif expected == LIST:
            assert response.status_code == 200, described
            text = response.content.decode()
            assert all(str(value.pk) not in text for value in outside_objects.values()), described
            assert response.json()["count"] == (1 if route == "/api/v1/volumes" else 0), described
        else:
            assert response.status_code != 403, described


@pytest.mark.django_db
def test_a_token_limited_to_reading_is_refused_every_change(case, outside_objects, scoped_api):
    route, method, url = case
    response = call(scoped_api("admin", verbs=["read"]), method, url, outside_objects)
    described = f"{method} {url}: {response.status_code} {body_start(response)!r}"
    if method == "GET":
        assert response.status_code != 403, described
    else:
        assert response.status_code == 403 and response.json()["code"] == "verb_not_in_scope", described
        assert set(response.json()) == {"code", "message", "detail"}


def test_the_matrix_uses_real_routes():
    # Guards the machinery: if route discovery broke, both matrices would pass vacuously.
    assert len(SCOPED_CASES) == len(EXPECTED_SCOPED_OUTCOME)
    assert all(re.match(r"^/api/v1/", route) for route, _, _ in SCOPED_CASES)
