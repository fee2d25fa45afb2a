"""Maintenance mode: mutations answer 503 with Retry-After, reads keep working."""

import pytest
from django.core.management import call_command


@pytest.fixture
def maintenance_file(settings, tmp_path):
    settings.MAINTENANCE_FILE = tmp_path / "maintenance"
    yield settings.MAINTENANCE_FILE
    settings.MAINTENANCE_FILE.unlink(missing_ok=True)


@pytest.mark.django_db
def test_maintenance_on_refuses_mutations_but_serves_reads(api, maintenance_file, capsys):
    call_command("maintenance", "on")
    assert maintenance_file.exists()
    assert "maintenance: on" in capsys.readouterr().out

    refused = api("admin").post("/api/v1/volumes", {"name": "during-upgrade", "size_gb": 1}, format="json")
    assert refused.status_code == 503
    assert refused["Retry-After"] == "60"
    assert refused.json()["code"] == "maintenance"
    assert api("read").get("/api/v1/volumes").status_code == 200

    call_command("maintenance", "off")
    assert not maintenance_file.exists()
    accepted = api("admin").post("/api/v1/volumes", {"name": "after-upgrade", "size_gb": 1}, format="json")
    assert accepted.status_code == 201
