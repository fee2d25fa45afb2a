"""`/api/v1/repository-keys` on a real local repository (and once on S3): list, add, remove,
rotate; the platform keeps working after a rotation, the old secret opens nothing, refusals
are 4xx in the error shape, and no secret reaches a list, an audit event or a log line."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEvent
from backups import repository_secret, runners, services, storage
from backups.engine.backends import LocalBackend
from backups.engine.errors import WrongKey
from backups.engine.keys import MasterKey, load_key_encryption_key, wrap_master_key
from backups.engine.repository import Repository
from backups.models import BackupTrigger, Job, JobStatus, PlatformRepositoryKey
from backups.tests.test_storage_adapter import s3_storage  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

KEYS_URL = "/api/v1/repository-keys"
#: 64 hex digits: the HKDF path, so every open in these tests costs microseconds.
OPERATOR_SECRET = "ab" * 32


@pytest.fixture
def repository(settings, own_repository):
    """The test's own repository, created with the operator's secret (REPOSITORY_KEY)."""
    settings.REPOSITORY_KEY = OPERATOR_SECRET
    storage.forget_cached_repository()
    storage.open_repository().close()
    return own_repository


@pytest.fixture
def admin_api(api):
    return api("admin")


def key_ids(location: Path) -> list[str]:
    return sorted(path.name for path in (location / "keys").iterdir())


def back_up(volume):
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED, Job.objects.get(pk=backup.job_id).error
    backup.refresh_from_db()
    return backup


def as_a_new_process():
    """What a worker or API process started now would do: open the repository anew."""
    storage.forget_cached_repository()


def test_the_list_shows_each_key_and_the_one_in_use_without_key_material(admin_api, repository):
    response = admin_api.get(KEYS_URL)
    assert response.status_code == 200
    [key] = response.json()["results"]
    assert set(key) == {"id", "created", "kdf", "in_use", "orphan", "secret_source"}
    assert (key["id"], key["kdf"], key["in_use"], key["orphan"], key["secret_source"]) == (
        key_ids(repository)[0], "hkdf", True, False, "environment")
    assert OPERATOR_SECRET not in response.content.decode()


def test_an_added_key_opens_the_repository_and_its_secret_is_shown_once(admin_api, repository, caplog):
    caplog.set_level(logging.DEBUG)
    response = admin_api.post(KEYS_URL, {}, format="json")
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    added = response.json()
    assert re.fullmatch(r"[0-9a-f]{64}", added["secret"]) and added["in_use"] is False
    assert Repository.open(LocalBackend(str(repository)), added["secret"]).key_name == f"keys/{added['id']}"
    listing = admin_api.get(KEYS_URL).json()["results"]
    assert sorted(key["id"] for key in listing) == key_ids(repository)
    assert [key["id"] for key in listing if key["in_use"]] != [added["id"]]  # the platform kept its key
    [event] = AuditEvent.objects.filter(method="POST", path=KEYS_URL)
    assert (event.target_type, event.target_id, event.status_code) == ("repository-keys", added["id"], 201)
    assert_nowhere(added["secret"], caplog, admin_api.get(KEYS_URL).content.decode())
    assert not PlatformRepositoryKey.objects.exclude(key_id="").exists()  # not the platform's: not stored


def assert_nowhere(secret: str, caplog, *texts: str) -> None:
    """Not in a log line, an audit event, or any of `texts` (other answers)."""
    assert not [record.getMessage() for record in caplog.records if secret in record.getMessage()]
    for event in AuditEvent.objects.all():
        assert secret not in " ".join(str(value) for value in vars(event).values())
    for text in texts:
        assert secret not in text


def test_rotation_switches_the_platform_and_the_old_secret_opens_nothing(admin_api, repository, make_volume,
                                                                          tmp_path, caplog, sent_messages):
    caplog.set_level(logging.DEBUG)
    volume = make_volume("vol-keys", files={"a.txt": b"before the rotation"})
    before = back_up(volume)
    packs_before = sorted(path.name for path in (repository / "data").rglob("*") if path.is_file())
    [old_key] = key_ids(repository)

    response = admin_api.post(f"{KEYS_URL}/rotate", format="json")
    assert response.status_code == 201, response.json()
    rotated = response.json()
    assert (rotated["removed_key"], rotated["removal_error"], rotated["in_use"], rotated["secret_source"]) == (
        old_key, "", True, "platform")
    assert key_ids(repository) == [rotated["id"]]
    # Only the wrapping changed: every pack is still there, untouched.
    assert sorted(path.name for path in (repository / "data").rglob("*") if path.is_file()) == packs_before
    with pytest.raises(WrongKey):
        Repository.open(LocalBackend(str(repository)), OPERATOR_SECRET)

    as_a_new_process()  # REPOSITORY_KEY still holds the old secret: the stored one opens
    (volume_root := Path(volume.path)).joinpath("b.txt").write_bytes(b"after the rotation")
    after = back_up(volume)
    restore = services.start_restore(before, new_volume_name="vol-keys-restored")
    assert runners.execute(restore.pk) == JobStatus.SUCCEEDED, Job.objects.get(pk=restore.pk).error
    restored = Path(Job.objects.get(pk=restore.pk).volume.path)
    assert (restored / "a.txt").read_bytes() == b"before the rotation" and not (restored / "b.txt").exists()
    assert after.snapshot_id and volume_root.joinpath("a.txt").exists()

    [listed] = admin_api.get(KEYS_URL).json()["results"]
    assert (listed["id"], listed["in_use"], listed["secret_source"]) == (rotated["id"], True, "platform")
    assert [event.target_id for event in AuditEvent.objects.filter(action__contains="rotate")] == [rotated["id"]]
    assert_nowhere(rotated["secret"], caplog, admin_api.get(KEYS_URL).content.decode())
    assert PlatformRepositoryKey.objects.get().sealed_secret.startswith("v1.")
    assert rotated["secret"] not in PlatformRepositoryKey.objects.get().sealed_secret

    # The operator copies the new secret into REPOSITORY_KEY_FILE: from then on it is used.
    exported = tmp_path / "repository_key"
    call_command("export_repository_key", str(exported))
    assert exported.read_text().strip() == rotated["secret"] and exported.stat().st_mode & 0o777 == 0o600
    with pytest.raises(CommandError, match="cannot create"):
        call_command("export_repository_key", str(exported))  # never overwrites


def test_rotating_twice_replaces_the_stored_secret(admin_api, repository):
    first = admin_api.post(f"{KEYS_URL}/rotate").json()
    second = admin_api.post(f"{KEYS_URL}/rotate").json()
    assert second["removed_key"] == first["id"] and key_ids(repository) == [second["id"]]
    as_a_new_process()
    assert storage.reopen_repository()[0].key_name == f"keys/{second['id']}"


def test_a_rotation_whose_old_key_cannot_be_removed_says_so_and_rotating_again_finishes(
        admin_api, repository, monkeypatch):
    from backups.engine.backend import BackendWrapper
    from backups.engine.errors import BackendError

    class KeyDeletesRefused(BackendWrapper):
        def delete(self, name):
            if name.startswith("keys/"):
                raise BackendError("the storage refused the delete")
            return self.inner.delete(name)

    real_backend = storage.engine_backend
    monkeypatch.setattr(storage, "engine_backend", lambda **options: KeyDeletesRefused(real_backend(**options)))
    [old_key] = key_ids(repository)
    half = admin_api.post(f"{KEYS_URL}/rotate").json()
    assert (half["removed_key"], half["in_use"], half["secret_source"]) == (None, False, None)
    assert "refused the delete" in half["removal_error"]
    # REPOSITORY_KEY still opens the old key, so it stays the one in use.
    in_use = [key["id"] for key in admin_api.get(KEYS_URL).json()["results"] if key["in_use"]]
    assert in_use == [old_key]

    monkeypatch.setattr(storage, "engine_backend", real_backend)
    again = admin_api.post(f"{KEYS_URL}/rotate").json()
    assert (again["removed_key"], again["in_use"]) == (old_key, True)
    assert admin_api.delete(f"{KEYS_URL}/{half['id']}").status_code == 204  # its secret is stored no more
    assert key_ids(repository) == [again["id"]]


def test_removing_the_last_key_the_key_in_use_or_an_unknown_key_is_refused(admin_api, repository):
    [only_key] = key_ids(repository)
    refused = admin_api.delete(f"{KEYS_URL}/{only_key}")
    assert refused.status_code == 409 and refused.json()["code"] == "last_key"
    assert set(refused.json()) == {"code", "message", "detail"}
    added = admin_api.post(KEYS_URL).json()
    in_use = admin_api.delete(f"{KEYS_URL}/{only_key}")
    assert in_use.status_code == 409 and in_use.json()["code"] == "key_in_use"
    for unknown in ("0" * 64, "not-a-key-id", "A" * 64):
        missing = admin_api.delete(f"{KEYS_URL}/{unknown}")
        assert missing.status_code == 404 and missing.json()["code"] == "key_not_found"
    assert key_ids(repository) == sorted([only_key, added["id"]])  # nothing lost
    assert admin_api.delete(f"{KEYS_URL}/{added['id']}").status_code == 204
    assert key_ids(repository) == [only_key]


@pytest.mark.parametrize("body, code", [({"passphrase": "mine"}, "validation_error"), ([1], "validation_error"),
                                        ("{not json", "malformed_request")])
def test_a_body_with_input_is_a_400_and_changes_nothing(admin_api, repository, body, code):
    for url in (KEYS_URL, f"{KEYS_URL}/rotate"):
        if isinstance(body, str):
            response = admin_api.post(url, body, content_type="application/json")
        else:
            response = admin_api.post(url, body, format="json")
        assert response.status_code == 400 and response.json()["code"] == code
    assert len(key_ids(repository)) == 1 and not PlatformRepositoryKey.objects.exclude(key_id="").exists()


def test_one_key_operation_at_a_time(admin_api, repository):
    with repository_secret.key_operation("a rotation elsewhere"):
        busy = admin_api.post(f"{KEYS_URL}/rotate")
    assert busy.status_code == 409 and busy.json()["code"] == "key_operation_in_progress"
    assert busy.json()["detail"]["operation"].startswith("a rotation elsewhere")
    assert len(key_ids(repository)) == 1
    assert admin_api.post(f"{KEYS_URL}/rotate").status_code == 201  # the lease was released


def test_a_lease_left_by_a_dead_process_is_taken_over(repository):
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(seconds=repository_secret.LEASE_SECONDS + 1)
    with repository_secret.key_operation("a process that died", now=lambda: long_ago):
        with repository_secret.key_operation("the next operation"):
            assert PlatformRepositoryKey.objects.get().operation.startswith("the next operation")


def test_orphan_keys_block_rotation_and_cannot_be_removed_alone(admin_api, repository):
    # What a lost concurrent initialisation of an older version left: a key object that
    # unwraps with the operator's secret but does not open the config (see orphans.py).
    orphan_object = wrap_master_key(MasterKey.generate(), load_key_encryption_key(OPERATOR_SECRET))
    orphan = hashlib.sha256(orphan_object).hexdigest()
    (repository / "keys" / orphan).write_bytes(orphan_object)
    listing = {key["id"]: key for key in admin_api.get(KEYS_URL).json()["results"]}
    assert listing[orphan]["orphan"] is True and listing[orphan]["in_use"] is False
    rotate = admin_api.post(f"{KEYS_URL}/rotate")
    assert rotate.status_code == 409 and rotate.json()["code"] == "orphan_keys_present"
    assert rotate.json()["detail"] == {"orphan_keys": [orphan]}
    remove = admin_api.delete(f"{KEYS_URL}/{orphan}")
    assert remove.status_code == 409 and remove.json()["code"] == "orphan_key" and "runbook" in remove.json()["message"]
    assert len(key_ids(repository)) == 2


def test_the_stored_secret_is_sealed_with_secret_key_and_bound_to_its_key(settings):
    sealed = repository_secret.seal("the secret", "ab" * 32)
    assert repository_secret.unseal(sealed, "ab" * 32) == "the secret"
    assert repository_secret.unseal(sealed, "cd" * 32) is None  # moved to another key: refused
    old_secret_key, settings.SECRET_KEY = settings.SECRET_KEY, "a new secret key for the platform" * 2
    assert repository_secret.unseal(sealed, "ab" * 32) is None
    settings.SECRET_KEY_FALLBACKS = [old_secret_key]  # a SECRET_KEY rotated the Django way
    assert repository_secret.unseal(sealed, "ab" * 32) == "the secret"


def test_when_the_stored_secret_cannot_be_unsealed_repository_key_still_opens(admin_api, repository, settings):
    rotated = admin_api.post(f"{KEYS_URL}/rotate").json()
    settings.SECRET_KEY = "a different secret key, the old one lost" * 2
    as_a_new_process()
    refused = admin_api.get(KEYS_URL)  # the secret file still holds the removed key's secret
    assert refused.status_code == 500 and refused.json()["code"] == "wrong_key"
    assert refused.json()["message"].startswith("REPOSITORY_KEY does not open the repository")
    settings.REPOSITORY_KEY = rotated["secret"]  # the operator copied it into the secret file
    repository_object, source = storage.reopen_repository()
    assert (repository_object.key_name, source) == (f"keys/{rotated['id']}", "environment")


def test_rotation_on_s3(admin_api, s3_storage):
    [old_key] = [key["id"] for key in admin_api.get(KEYS_URL).json()["results"]]
    rotated = admin_api.post(f"{KEYS_URL}/rotate").json()
    stored = s3_storage.client.list_objects_v2(Bucket=s3_storage.name, Prefix="repository/keys/")
    assert [item["Key"] for item in stored["Contents"]] == [f"repository/keys/{rotated['id']}"]
    assert rotated["removed_key"] == old_key
    as_a_new_process()
    assert storage.open_repository().key_name == f"keys/{rotated['id']}"


def test_the_metric_tells_when_the_secret_file_predates_the_rotation(admin_api, repository, client, settings):
    from monitoring.tests.factories import samples, value

    settings.METRICS_TOKEN = None

    def outdated() -> float:
        return value(samples(client.get("/metrics").content.decode()), "repository_key_secret_file_outdated")

    assert outdated() == 0
    rotated = admin_api.post(f"{KEYS_URL}/rotate").json()
    assert outdated() == 1
    assert rotated["secret"] not in client.get("/metrics").content.decode()
    settings.REPOSITORY_KEY = rotated["secret"]  # the secret file was updated, the process restarted
    assert outdated() == 0
