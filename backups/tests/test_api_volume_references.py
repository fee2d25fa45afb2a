"""A volume reference that cannot be a volume's id or name (a NUL byte, which PostgreSQL
refuses in a query) is "no such volume" or "no match", never a 500. Found by the schemathesis
fuzz test; these fail on PostgreSQL without the name check in front of the query."""

from __future__ import annotations

import pytest

from backups.tests.test_api_backups import assert_error, completed_backup

pytestmark = pytest.mark.django_db

NUL_NAME = "vol-a\x00"


def test_a_volume_path_with_a_nul_byte_is_volume_not_found(api, volume):
    completed_backup(volume)
    assert_error(api("read").get("/api/v1/volumes/vol-a%00/backups"), 404, "volume_not_found")
    assert_error(api("backup").post("/api/v1/volumes/vol-a%00/backups"), 404, "volume_not_found")


def test_a_nul_byte_in_the_volume_filter_matches_nothing(api, volume):
    completed_backup(volume)
    for path in ("/api/v1/backups", "/api/v1/jobs"):
        assert api("read").get(path, {"volume": "vol-a"}).json()["count"] == 1, path
        response = api("read").get(path, {"volume": NUL_NAME})
        assert response.status_code == 200 and response.json()["count"] == 0, path


def test_a_trigger_naming_a_volume_with_a_nul_byte_is_a_4xx(api, volume, sent_messages):
    for path in ("/api/v1/backup", "/api/v1/backups"):
        response = api("backup").post(path, {"volume": NUL_NAME}, format="json")
        assert response.status_code == 400 and response.json()["code"] == "validation_error", path
    assert sent_messages == []
