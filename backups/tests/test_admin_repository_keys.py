"""Admin "Repository keys" page: superusers list, add, rotate and remove keys through the same
service as the API; each action is audited; a secret is shown once and never in a cookie."""

from __future__ import annotations

import re

import pytest

from accounts.models import AuditEvent
from backups.tests.test_repository_keys import key_ids, repository  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

PAGE = "/admin/backups/platformrepositorykey/"


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client.force_login(user)
    return client


def audited(action: str) -> list[tuple[str, int]]:
    return [(event.target_id, event.status_code)
            for event in AuditEvent.objects.filter(action=f"admin:{action}").order_by("id")]


def shown_secret(response) -> str:
    return re.search(r'<pre id="repository-key-secret">([0-9a-f]{64})</pre>', response.content.decode()).group(1)


def test_the_page_lists_the_keys_for_superusers_only(operator, client, repository, django_user_model):
    assert f'href="{PAGE}"' in operator.get("/admin/").content.decode()
    page = operator.get(PAGE)
    assert page.status_code == 200
    [key_id] = key_ids(repository)
    assert key_id in page.content.decode() and "REPOSITORY_KEY" in page.content.decode()
    staff = django_user_model.objects.create_user("viewer", "viewer@example.com", "a-long-password-2", is_staff=True)
    client.force_login(staff)
    assert PAGE not in client.get("/admin/").content.decode()
    assert client.get(PAGE).status_code == 403
    assert client.post(f"{PAGE}rotate/").status_code == 403
    assert key_ids(repository) == [key_id]


def test_add_asks_first_then_shows_the_secret_once_and_is_audited(operator, repository):
    confirm = operator.get(f"{PAGE}add-key/")
    assert confirm.status_code == 200 and len(key_ids(repository)) == 1  # nothing before the POST
    added = operator.post(f"{PAGE}add-key/")
    assert added.status_code == 200 and "no-store" in added["Cache-Control"]
    secret = shown_secret(added)
    assert not any(secret in morsel.value for morsel in added.cookies.values())
    new_id = next(key for key in key_ids(repository) if key in added.content.decode())
    assert audited("add_repository_key") == [(new_id, 201)]
    assert secret not in operator.get(PAGE).content.decode()


def test_rotate_switches_the_platform_and_remove_refuses_the_key_in_use(operator, repository):
    [old_key] = key_ids(repository)
    rotated = operator.post(f"{PAGE}rotate/")
    assert rotated.status_code == 200 and len(shown_secret(rotated)) == 64
    [new_key] = key_ids(repository)
    assert new_key != old_key and f"<code>{old_key}</code>, was removed" in rotated.content.decode()
    assert audited("rotate_repository_key") == [(new_key, 201)]

    refused = operator.post(f"{PAGE}{new_key}/remove/", follow=True)
    assert "last key" in refused.content.decode()
    assert audited("remove_repository_key") == [(new_key, 409)]
    assert key_ids(repository) == [new_key]

    operator.post(f"{PAGE}add-key/")
    [spare] = [key for key in key_ids(repository) if key != new_key]
    assert operator.get(f"{PAGE}{spare}/remove/").status_code == 200  # the confirmation page
    operator.post(f"{PAGE}{spare}/remove/")
    assert key_ids(repository) == [new_key]
    assert audited("remove_repository_key")[-1] == (spare, 204)
