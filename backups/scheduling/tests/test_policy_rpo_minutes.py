"""A policy's RPO in minutes, with a schedule more frequent than hourly."""

from __future__ import annotations

import datetime

import pytest
from django_celery_beat.models import PeriodicTask

from backups.models import Policy

pytestmark = pytest.mark.django_db

URL = "/api/v1/policies"


def test_every_15_minutes_with_a_15_minute_rpo_is_accepted_and_synced_to_beat(api):
    response = api("admin").post(URL, {"name": "databases", "schedule": "*/15 * * * *", "rpo_minutes": 15},
                                 format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["rpo_minutes"], body["rpo_hours"]) == (15, 0.25)
    next_run = datetime.datetime.fromisoformat(body["next_run"])
    assert next_run.minute % 15 == 0 and next_run.second == 0
    periodic = PeriodicTask.objects.get(name=f"policy:{body['id']}:backup")
    assert (periodic.crontab.minute, periodic.crontab.hour) == ("*/15", "*")


def test_rpo_hours_keeps_its_meaning_for_old_clients(api):
    created = api("admin").post(URL, {"name": "hourly", "rpo_hours": 2}, format="json").json()
    assert (created["rpo_hours"], created["rpo_minutes"]) == (2, 120)
    updated = api("admin").patch(f"{URL}/{created['id']}", {"rpo_minutes": 30}, format="json").json()
    assert (updated["rpo_hours"], updated["rpo_minutes"]) == (0.5, 30)
    sent_back = api("admin").put(f"{URL}/{created['id']}", {**updated, "name": "hourly"}, format="json")
    assert sent_back.status_code == 200, sent_back.content


@pytest.mark.parametrize("fields, bad_field", [
    ({"rpo_minutes": 15, "rpo_hours": 1}, "rpo_minutes"),
    ({"rpo_minutes": 0}, "rpo_minutes"),
    ({"rpo_hours": 0.5}, "rpo_hours"),
    ({"rpo_hours": True}, "rpo_hours"),
    ({"rpo_hours": 24 * 366 + 1}, "rpo_hours"),
])
def test_bad_rpo_combinations_are_a_400_in_the_error_shape(api, fields, bad_field):
    response = api("admin").post(URL, {"name": "bad", **fields}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error" and bad_field in body["detail"]
    assert not Policy.objects.filter(name="bad").exists()
