"""`REPLICATION_TARGETS` / `REPLICATION_TARGETS_FILE`: parsed and validated at start, each
mistake a `ConfigError` naming the variable and the target (tests/test_config.py shows it
becomes one line on stderr)."""

from __future__ import annotations

import json

import pytest

from storage_platform.config import ConfigError, replication_targets


def parse(targets, **more) -> dict:
    return replication_targets({"REPLICATION_TARGETS": json.dumps(targets), **more})


def test_a_directory_and_an_s3_target(tmp_path):
    key_file = tmp_path / "replica.key"
    key_file.write_text("the replica secret\n")
    parsed = parse({"dr": {"location": str(tmp_path / "replica")},
                    "offsite": {"location": "s3://bucket/some/prefix/", "endpoint_url": "https://s3.example",
                                "region": "eu-west-1", "access_key_id": "AK", "secret_access_key": "SK",
                                "key_file": str(key_file)}})
    assert parsed["dr"]["kind"] == "local" and parsed["dr"]["location"] == str(tmp_path / "replica")
    assert parsed["dr"]["key"] is None
    assert parsed["offsite"]["kind"] == "s3" and parsed["offsite"]["location"] == "s3://bucket/some/prefix"
    assert parsed["offsite"]["key"] == "the replica secret"


def test_an_immutable_s3_target_carries_its_lock():
    parsed = parse({"vault": {"location": "s3://vault", "lock_mode": "Compliance", "lock_days": 3650},
                    "plain": {"location": "s3://plain"}})
    assert (parsed["vault"]["lock_mode"], parsed["vault"]["lock_days"]) == ("compliance", 3650)
    assert (parsed["plain"]["lock_mode"], parsed["plain"]["lock_days"]) == (None, None)


def test_the_file_and_the_variable_are_merged(tmp_path):
    secret_file = tmp_path / "targets.json"
    secret_file.write_text(json.dumps({"offsite": {"location": "s3://b", "access_key_id": "AK",
                                                   "secret_access_key": "SK"}}))
    parsed = parse({"dr": {"location": "/srv/replica"}}, REPLICATION_TARGETS_FILE=str(secret_file))
    assert sorted(parsed) == ["dr", "offsite"]
    with pytest.raises(ConfigError, match="'offsite' is given twice"):
        parse({"offsite": {"location": "/srv/x"}}, REPLICATION_TARGETS_FILE=str(secret_file))


def test_nothing_configured_is_no_target():
    assert replication_targets({}) == {}


@pytest.mark.parametrize("targets, message", [
    ("not json", "not valid JSON"),
    ([], "must be a JSON object"),
    ({"Bad_Name": {"location": "/x"}}, "a name is lowercase"),
    ({"dr": "/srv/replica"}, "must be an object"),
    ({"dr": {}}, '"location" is required'),
    ({"dr": {"location": "srv/replica"}}, "absolute path"),
    ({"dr": {"location": "ftp://host/x"}}, "unsupported location"),
    ({"dr": {"location": "s3://"}}, "no bucket"),
    ({"dr": {"location": "/x", "endpoint_url": "http://s3"}}, "s3:// locations only"),
    ({"dr": {"location": "s3://b", "access_key_id": "AK"}}, "both access_key_id and secret_access_key"),
    ({"dr": {"location": "s3://b", "endpoint_url": "s3.example"}}, "http(s) URL"),
    ({"dr": {"location": "/x", "password": "p"}}, "unknown field(s) password"),
    ({"dr": {"location": "/x", "key_file": "/nonexistent/key"}}, "cannot be read"),
    ({"dr": {"location": 7}}, "location must be a string"),
    ({"dr": {"location": "s3://b", "lock_mode": "governance"}}, "lock_mode and lock_days go together"),
    ({"dr": {"location": "s3://b", "lock_days": 30}}, "lock_mode and lock_days go together"),
    ({"dr": {"location": "s3://b", "lock_mode": "legal-hold", "lock_days": 30}}, "lock_mode must be one of"),
    ({"dr": {"location": "s3://b", "lock_mode": "governance", "lock_days": 0}}, "lock_days must be a whole number"),
    ({"dr": {"location": "s3://b", "lock_mode": "governance", "lock_days": 3651}}, "from 1 to 3650"),
    ({"dr": {"location": "s3://b", "lock_mode": "governance", "lock_days": "30"}}, "lock_days must be a whole"),
    ({"dr": {"location": "s3://b", "lock_mode": "governance", "lock_days": True}}, "lock_days must be a whole"),
    ({"dr": {"location": "s3://b", "lock_mode": 1, "lock_days": 30}}, "lock_mode must be a string"),
    ({"dr": {"location": "/srv/replica", "lock_mode": "compliance", "lock_days": 30}}, "need an s3:// location"),
])
def test_mistakes_are_named(targets, message):
    environ = {"REPLICATION_TARGETS": targets if isinstance(targets, str) else json.dumps(targets)}
    with pytest.raises(ConfigError) as error:
        replication_targets(environ)
    assert message in str(error.value) and "REPLICATION_TARGETS" in str(error.value)


def test_a_secret_is_never_in_an_error_message():
    with pytest.raises(ConfigError) as error:
        parse({"dr": {"location": "s3://b", "secret_access_key": "very-secret-value"}})
    assert "very-secret-value" not in str(error.value)
