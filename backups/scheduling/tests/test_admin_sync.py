"""The Django admin path: an operator edits the backup crontab in django-celery-beat's admin
pages and the policy (and so the API) shows the new schedule."""

from __future__ import annotations

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backups.models import Policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.org", "a-long-test-password")
    client.force_login(user)
    return client


def test_editing_the_crontab_in_the_admin_changes_the_policy_and_the_api(admin_client_logged_in, api):
    policy = Policy.objects.create(name="via-admin", schedule="0 18 * * *", timezone="UTC")
    crontab = PeriodicTask.objects.get(name=f"policy:{policy.pk}:backup").crontab
    # A crontab of its own, so the edit below touches only this policy's schedule.
    assert not PeriodicTask.objects.filter(crontab=crontab).exclude(name__startswith=f"policy:{policy.pk}:").exists()

    response = admin_client_logged_in.post(
        f"/admin/django_celery_beat/crontabschedule/{crontab.pk}/change/",
        {"minute": "15", "hour": "19", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*",
         "timezone": "Europe/Berlin",
         # The page's inline of periodic tasks using this crontab: submitted unchanged (empty).
         "periodictask_set-TOTAL_FORMS": "0", "periodictask_set-INITIAL_FORMS": "0",
         "periodictask_set-MIN_NUM_FORMS": "0", "periodictask_set-MAX_NUM_FORMS": "1000"},
    )

    assert response.status_code == 302, [line for line in response.content.decode().splitlines() if "error" in line.lower()][:10]
    policy.refresh_from_db()
    assert (policy.schedule, policy.timezone) == ("15 19 * * *", "Europe/Berlin")
    body = api("read").get(f"/api/v1/policies/{policy.pk}").json()
    assert (body["schedule"], body["timezone"]) == ("15 19 * * *", "Europe/Berlin")
    assert CrontabSchedule.objects.get(pk=crontab.pk).hour == "19"
