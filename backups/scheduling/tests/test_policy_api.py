"""The policy resource: roles, validation in the one error shape, delete rules, beat sync."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from backups.models import Policy

pytestmark = pytest.mark.django_db

URL = "/api/v1/policies"


def test_read_role_lists_policies_with_volume_count_and_next_run(api, make_volume):
    default = Policy.objects.get(is_default=True)
    make_volume("v1", policy=default)
    make_volume("v2")  # no policy: follows the default one
    response = api("read").get(URL)
    assert response.status_code == 200
    body = response.json()
    listed = {item["name"]: item for item in body["results"]}
    assert listed["default"]["volume_count"] == 2
    assert listed["default"]["schedule"] == "0 18 * * *"
    assert listed["default"]["next_run"].endswith("18:00:00+00:00")


def test_only_admin_may_create(api):
    payload = {"name": "nightly"}
    assert api(None).post(URL, payload, format="json").status_code == 401
    assert api("read").post(URL, payload, format="json").status_code == 403
    assert api("backup").post(URL, payload, format="json").status_code == 403
    response = api("admin").post(URL, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["schedule"], body["timezone"], body["rpo_hours"], body["keep_good"]) == ("0 18 * * *", "UTC", 24, 3)


def test_create_in_a_time_zone_syncs_beat(api):
    response = api("admin").post(URL, {"name": "berlin", "schedule": "30 18 * * mon-fri",
                                       "timezone": "Europe/Berlin"}, format="json")
    assert response.status_code == 201
    periodic = PeriodicTask.objects.get(name=f"policy:{response.json()['id']}:backup")
    assert (periodic.crontab.minute, periodic.crontab.hour, periodic.crontab.day_of_week) == ("30", "18", "mon-fri")
    assert str(periodic.crontab.timezone) == "Europe/Berlin"


@pytest.mark.parametrize("field, value, fragment", [
    ("schedule", "0 18 * *", "five"),
    ("schedule", "0 25 * * *", "not a valid cron"),
    ("schedule", "0 18 L * *", "does not support"),
    ("verify_schedule", "nope", "fields"),
    ("timezone", "Europe/Atlantis", "IANA"),
    ("retention", {"keep_forever": 1}, "Unknown retention key"),
    ("retention", {"keep_daily": -1}, "whole number"),
    ("retention", {"keep_within": "a week"}, "duration"),
    ("retention", {}, "keep something"),
    ("retention", "7 days", "object"),
    ("rpo_hours", 0, "rpo_hours"),
    ("verify_percent", 101, "verify_percent"),
    ("keep_good", -1, "keep_good"),
    ("keep_good", 1001, "keep_good"),
    ("keep_good", "three", "keep_good"),
])
def test_bad_input_is_a_400_in_the_error_shape(api, field, value, fragment):
    response = api("admin").post(URL, {"name": "bad", field: value}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in body["detail"]
    assert fragment in body["message"] or fragment in str(body["detail"])


def test_patch_updates_the_schedule_and_the_periodic_task(api):
    policy = Policy.objects.create(name="p")
    response = api("admin").patch(f"{URL}/{policy.pk}", {"schedule": "0 6 * * *", "enabled": False}, format="json")
    assert response.status_code == 200, response.content
    periodic = PeriodicTask.objects.get(name=f"policy:{policy.pk}:backup")
    assert periodic.crontab.hour == "6"
    assert periodic.enabled is False
    assert response.json()["next_run"] is None


def test_keep_good_is_set_and_changed_through_the_api(api):
    created = api("admin").post(URL, {"name": "careful", "keep_good": 5}, format="json")
    assert created.status_code == 201 and created.json()["keep_good"] == 5
    changed = api("admin").patch(f"{URL}/{created.json()['id']}", {"keep_good": 0}, format="json")
    assert changed.status_code == 200 and changed.json()["keep_good"] == 0
    assert Policy.objects.get(name="careful").keep_good == 0


def test_the_default_policy_cannot_be_deleted(api):
    default = Policy.objects.get(is_default=True)
    response = api("admin").delete(f"{URL}/{default.pk}")
    assert response.status_code == 409
    assert response.json()["code"] == "default_policy_protected"


def test_a_policy_in_use_cannot_be_deleted(api, make_volume):
    policy = Policy.objects.create(name="used")
    make_volume("v1", policy=policy)
    response = api("admin").delete(f"{URL}/{policy.pk}")
    assert response.status_code == 409
    assert response.json()["code"] == "policy_in_use"
    assert response.json()["detail"]["volume_count"] == 1
    assert Policy.objects.filter(pk=policy.pk).exists()


def test_an_unused_policy_is_deleted_with_its_tasks(api):
    policy = Policy.objects.create(name="unused")
    response = api("admin").delete(f"{URL}/{policy.pk}")
    assert response.status_code == 204
    assert not PeriodicTask.objects.filter(name__startswith=f"policy:{policy.pk}:").exists()


def test_duplicate_name_is_a_400_and_unknown_id_a_404(api):
    Policy.objects.create(name="twin")
    assert api("admin").post(URL, {"name": "twin"}, format="json").status_code == 400
    response = api("read").get(f"{URL}/999999")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
