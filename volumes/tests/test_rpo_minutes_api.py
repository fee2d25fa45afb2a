"""A volume's RPO in minutes: `rpo_minutes` or `rpo_hours` in requests, both in responses."""

from __future__ import annotations

import pytest

from backups.models import Policy
from volumes.models import Volume
from volumes.tests.conftest import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/volumes"


def test_a_15_minute_override_is_answered_in_minutes_and_in_hours(admin, create_volume):
    body = create_volume("orders-db", rpo_minutes=15)
    assert (body["rpo_minutes"], body["rpo_hours"]) == (15, 0.25)
    assert Volume.objects.get(name="orders-db").rpo_minutes_override == 15
    patched = admin.patch(f"{URL}/orders-db", {"rpo_minutes": 90}, format="json").json()
    assert (patched["rpo_minutes"], patched["rpo_hours"]) == (90, 1.5)


def test_old_clients_set_and_read_whole_hours_as_before(admin, create_volume):
    hourly = Policy.objects.create(name="hourly", schedule="0 * * * *", rpo_hours=2)
    body = create_volume("web-data", policy="hourly", rpo_hours=6)
    assert (body["rpo_hours"], body["rpo_minutes"]) == (6, 360)
    assert isinstance(body["rpo_hours"], int)  # 6, not 6.0: typed clients keep parsing it
    cleared = admin.patch(f"{URL}/web-data", {"rpo_hours": None}, format="json").json()
    assert (cleared["rpo_hours"], cleared["rpo_minutes"]) == (2, hourly.rpo_minutes)


def test_a_resource_sent_back_as_read_keeps_working(admin, create_volume):
    body = create_volume("round-trip", rpo_minutes=15)
    response = admin.put(f"{URL}/round-trip", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["rpo_minutes"] == 15


@pytest.mark.parametrize("fields, bad_field", [
    ({"rpo_minutes": 15, "rpo_hours": 1}, "rpo_minutes"),
    ({"rpo_minutes": 60, "rpo_hours": None}, "rpo_minutes"),
    ({"rpo_minutes": 0}, "rpo_minutes"),
    ({"rpo_minutes": 1.5}, "rpo_minutes"),
    ({"rpo_minutes": 24 * 366 * 60 + 1}, "rpo_minutes"),
    ({"rpo_hours": 0.25}, "rpo_hours"),
])
def test_bad_rpo_combinations_are_a_400_naming_the_field_and_change_nothing(admin, create_volume, fields, bad_field):
    create_volume("kept", rpo_hours=4)
    error = assert_error(admin.patch(f"{URL}/kept", fields, format="json"), 400, "validation_error")
    assert bad_field in error["detail"]
    assert Volume.objects.get(name="kept").rpo_minutes_override == 240
    assert_error(admin.post(URL, {"name": "new-one", "size_gb": 1, **fields}, format="json"), 400,
                 "validation_error")
    assert not Volume.objects.filter(name="new-one").exists()
