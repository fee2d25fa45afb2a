"""The Django admin for volumes goes through the services (folders made and removed)."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model

from volumes.admin import VolumeAdmin, register_volume_action
from volumes.models import Volume

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_superuser("operator", "op@example.com", "secret-pass-123")
    client.force_login(user)
    return client


def test_admin_lists_searches_and_filters(operator, make_volume):
    make_volume("alpha", files={"a": b"1234"})
    make_volume("beta", status="error")
    listing = operator.get("/admin/volumes/volume/")
    assert listing.status_code == 200
    assert b"alpha" in listing.content and b"beta" in listing.content
    searched = operator.get("/admin/volumes/volume/", {"q": "alph"})
    assert b"alpha" in searched.content and b">beta<" not in searched.content
    filtered = operator.get("/admin/volumes/volume/", {"status__exact": "error"})
    assert b">beta<" in filtered.content and b">alpha<" not in filtered.content


def test_admin_create_makes_the_folder_and_delete_removes_it(operator):
    response = operator.post("/admin/volumes/volume/add/", {
        "name": "from-admin", "size_gb": "2", "pool": "default", "node": "", "labels": '{"team": "ops"}',
        "policy": "", "rpo_hours_override": "",
    })
    assert response.status_code == 302, response.content[:2000]
    volume = Volume.objects.get(name="from-admin")
    assert volume.status == "available" and volume.labels == {"team": "ops"}
    assert os.path.isdir(volume.path)
    deleted = operator.post(f"/admin/volumes/volume/{volume.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not Volume.objects.filter(pk=volume.pk).exists()
    assert not os.path.exists(volume.path)


def test_admin_refuses_invalid_names_and_shrinking_below_usage(operator, make_volume):
    bad = operator.post("/admin/volumes/volume/add/", {"name": "Bad_Name", "size_gb": "1", "pool": "default",
                                                      "labels": "{}"})
    assert bad.status_code == 200 and not Volume.objects.filter(name="Bad_Name").exists()
    volume = make_volume("full", size_gb=2)
    Volume.objects.filter(pk=volume.pk).update(used_bytes=1024**3 + 1)
    shrink = operator.post(f"/admin/volumes/volume/{volume.pk}/change/", {"size_gb": "1", "labels": "{}",
                                                                          "policy": "", "rpo_hours_override": ""})
    assert shrink.status_code == 200 and b"too small" in shrink.content
    assert Volume.objects.get(pk=volume.pk).size_gb == 2


def test_other_apps_can_register_actions():
    def back_up_now(model_admin, request, queryset):
        pass

    register_volume_action(back_up_now)
    try:
        assert back_up_now in VolumeAdmin.actions
    finally:
        VolumeAdmin.actions.remove(back_up_now)


def test_admin_sets_the_rpo_override_in_minutes_or_in_whole_hours(operator):
    fields = {"name": "orders-db", "size_gb": "1", "pool": "default", "node": "", "labels": "{}", "policy": "",
              "rpo_minutes_override": "15", "rpo_hours_override": ""}
    assert operator.post("/admin/volumes/volume/add/", fields).status_code == 302
    volume = Volume.objects.get(name="orders-db")
    assert volume.rpo_minutes_override == 15
    assert "15 min" in operator.get("/admin/volumes/volume/").content.decode()
    change = {key: value for key, value in fields.items() if key not in ("name", "pool", "node")}
    hours = operator.post(f"/admin/volumes/volume/{volume.pk}/change/", {**change, "rpo_hours_override": "3"})
    assert hours.status_code == 302
    assert Volume.objects.get(pk=volume.pk).rpo_minutes_override == 180
    both = operator.post(f"/admin/volumes/volume/{volume.pk}/change/",
                         {**change, "rpo_minutes_override": "20", "rpo_hours_override": "1"})
    assert both.status_code == 200 and "rpo_minutes_override" in both.context["adminform"].form.errors
    assert Volume.objects.get(pk=volume.pk).rpo_minutes_override == 180
