"""Bad input to the volume resource: each a 4xx in the one error shape, never a 500."""

from __future__ import annotations

import pytest

from volumes.models import Volume
from volumes.tests.conftest import assert_error

pytestmark = pytest.mark.django_db


def post(admin, body):
    return admin.post("/api/v1/volumes", body, format="json")


def test_malformed_json_is_400(admin):
    response = admin.post("/api/v1/volumes", b'{"name": "x", "size_gb": ', content_type="application/json")
    assert_error(response, 400, "malformed_request")


def test_body_that_is_not_an_object_is_400(admin):
    assert_error(admin.post("/api/v1/volumes", b"[1, 2]", content_type="application/json"), 400,
                 "validation_error")


def test_duplicate_name_is_409(admin, create_volume):
    create_volume("twin")
    body = assert_error(post(admin, {"name": "twin", "size_gb": 1}), 409, "volume_exists")
    assert body["detail"] == {"name": "twin"}
    assert Volume.objects.filter(name="twin").count() == 1


@pytest.mark.parametrize("size_gb", [0, -1, 1.5, "ten", True, None, [], {"gb": 1}, 10**7])
def test_bad_size_gb_is_400(admin, size_gb):
    body = assert_error(post(admin, {"name": "sized", "size_gb": size_gb}), 400, "validation_error")
    assert "size_gb" in body["detail"]
    assert not Volume.objects.exists()


@pytest.mark.parametrize("name", ["", "UPPER", "-lead", "trail-", "under_score", "a" * 64, "dots.in.name", 7,
                                  None, "spa ce"])
def test_bad_name_is_400(admin, name):
    body = assert_error(post(admin, {"name": name, "size_gb": 1}), 400, "validation_error")
    assert "name" in body["detail"]


@pytest.mark.parametrize("labels", [["a"], "tier=gold", {"tier": 1}, {"tier": {"nested": "x"}},
                                    {"bad key!": "x"}, {"": "x"}, {f"k{index}": "v" for index in range(65)}])
def test_bad_labels_are_400(admin, labels):
    body = assert_error(post(admin, {"name": "labelled", "size_gb": 1, "labels": labels}), 400, "validation_error")
    assert "labels" in body["detail"]


def test_missing_fields_unknown_fields_policy_and_pool(admin):
    body = assert_error(post(admin, {}), 400, "validation_error")
    assert set(body["detail"]) == {"name", "size_gb"}
    assert "sizeGb" in assert_error(post(admin, {"name": "x", "size_gb": 1, "sizeGb": 2}), 400,
                                    "validation_error")["detail"]
    assert "policy" in assert_error(post(admin, {"name": "x", "size_gb": 1, "policy": "nope"}), 400,
                                    "validation_error")["detail"]
    assert "pool" in assert_error(post(admin, {"name": "x", "size_gb": 1, "pool": "nowhere"}), 400,
                                  "validation_error")["detail"]
    assert "rpo_hours" in assert_error(post(admin, {"name": "x", "size_gb": 1, "rpo_hours": 0}), 400,
                                       "validation_error")["detail"]


def test_update_validation_and_unknown_volume(admin, create_volume):
    create_volume("edit-me")
    assert_error(admin.patch("/api/v1/volumes/edit-me", {"size_gb": 0}, format="json"), 400, "validation_error")
    assert_error(admin.patch("/api/v1/volumes/edit-me", b"{oops", content_type="application/json"), 400,
                 "malformed_request")
    assert_error(admin.patch("/api/v1/volumes/ghost", {"size_gb": 2}, format="json"), 404, "volume_not_found")
    assert_error(admin.delete("/api/v1/volumes/ghost"), 404, "volume_not_found")
    assert Volume.objects.get(name="edit-me").size_gb == 1


def test_nul_bytes_anywhere_are_4xx_not_500(admin, create_volume):
    create_volume("plain")
    assert_error(admin.get("/api/v1/volumes/pl%00ain"), 404, "volume_not_found")
    assert_error(admin.get("/api/v1/volumes", {"name": "pl\x00ain"}), 400, "validation_error")
    assert_error(admin.get("/api/v1/volumes", {"label": "k=v\x00"}), 400, "validation_error")
    assert_error(post(admin, {"name": "x", "size_gb": 1, "policy": "de\x00fault"}), 400, "validation_error")
    assert_error(post(admin, {"name": "x\x00", "size_gb": 1}), 400, "validation_error")
    assert_error(post(admin, {"name": "x", "size_gb": 1, "labels": {"k": "v\x00"}}), 400, "validation_error")
