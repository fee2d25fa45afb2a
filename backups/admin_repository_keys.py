"""Admin page "Repository keys": the repository's keys, with add, rotate and remove.

Keys are objects in the repository, not rows, so the page replaces the model's change list
(`PlatformRepositoryKey` is only where the platform stores its rotated secret). Every button
calls `backups.repository_keys`, like the API, and writes an audit event with the staff user
as actor. Superusers only (the API's admin role): a key's secret opens every backup.

A generated secret is shown once, on the page that answers the POST (`Cache-Control:
no-store`), never through Django's messages (their cookie would carry it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from accounts.audit import record_admin_action
from backups import repository_keys
from backups.engine.errors import EngineError
from backups.models import PlatformRepositoryKey
from storage_platform.errors import PlatformError, engine_error_status

TARGET_TYPE = "repository-keys"


@dataclass(frozen=True)
class _SecretOperation:
    """An operation that makes a key and answers with its secret: its audit action, its
    confirmation page, its result page's title, and the service function."""

    action: str
    title: str
    question: str
    button: str
    done_title: str
    call: Callable


ADD_KEY = _SecretOperation(
    action="add_repository_key", title="Add a repository key", button="Yes, add a key",
    question="Wrap the repository's key under a new generated secret? The platform keeps using its own; the new "
             "secret is shown once, for a copy kept elsewhere (disaster recovery, or the next REPOSITORY_KEY).",
    done_title="New repository key", call=repository_keys.add_key)
ROTATE = _SecretOperation(
    action="rotate_repository_key", title="Rotate the repository key", button="Yes, rotate",
    question="Add a key under a new generated secret, switch the platform to it and remove the key in use now? "
             "No data is rewritten. The new secret is shown once: copy it into REPOSITORY_KEY_FILE on every host.",
    done_title="Repository key rotated", call=repository_keys.rotate)


def _failure_status(error: PlatformError | EngineError) -> int:
    return error.http_status if isinstance(error, PlatformError) else engine_error_status(error)


@admin.register(PlatformRepositoryKey)
class RepositoryKeyAdmin(admin.ModelAdmin):
    """The repository's keys, in place of a change list."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return False  # keys are added with the page's own button, not a model form

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path("", self.admin_site.admin_view(self.keys_view), name="%s_%s_changelist" % info),
            path("add-key/", self.admin_site.admin_view(self.add_key_view), name="backups_repository_key_add"),
            path("rotate/", self.admin_site.admin_view(self.rotate_view), name="backups_repository_key_rotate"),
            path("<str:key_id>/remove/", self.admin_site.admin_view(self.remove_view),
                 name="backups_repository_key_remove"),
        ]

    def _context(self, request, title: str, **extra) -> dict:
        return {**self.admin_site.each_context(request), "title": title, "opts": self.model._meta, **extra}

    def _require_superuser(self, request) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def _list_url(self) -> str:
        return reverse("admin:backups_platformrepositorykey_changelist")

    def keys_view(self, request):
        self._require_superuser(request)
        keys, problem = [], ""
        try:
            keys = repository_keys.list_keys()
        except (PlatformError, EngineError) as error:
            problem = error.message
        return TemplateResponse(request, "admin/backups/repository_keys/list.html",
                                self._context(request, "Repository keys", keys=keys, problem=problem))

    def _confirm(self, request, *, title: str, question: str, button: str):
        return TemplateResponse(request, "admin/backups/repository_keys/confirm.html",
                                self._context(request, title, question=question, button=button))

    def _secret_view(self, request, operation: _SecretOperation):
        """Confirm first (GET); on POST run the operation, audit it, and show the new secret once."""
        self._require_superuser(request)
        if request.method != "POST":
            return self._confirm(request, title=operation.title, button=operation.button,
                                 question=operation.question)
        try:
            new_key = operation.call(actor=f"user:{request.user.get_username()}")
        except (PlatformError, EngineError) as error:
            record_admin_action(request, action=operation.action, target_type=TARGET_TYPE,
                                status_code=_failure_status(error))
            self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(self._list_url())
        record_admin_action(request, action=operation.action, target_type=TARGET_TYPE, target_id=new_key.key.id,
                            status_code=201)
        response = TemplateResponse(request, "admin/backups/repository_keys/secret.html",
                                    self._context(request, operation.done_title, new_key=new_key))
        response["Cache-Control"] = "no-store"
        return response

    def add_key_view(self, request):
        return self._secret_view(request, ADD_KEY)

    def rotate_view(self, request):
        return self._secret_view(request, ROTATE)

    def remove_view(self, request, key_id: str):
        self._require_superuser(request)
        if request.method != "POST":
            return self._confirm(request, title="Remove a repository key", button="Yes, remove",
                                 question=f"Remove the key {key_id[:80]}? Its secret will no longer open the "
                                          "repository.")
        try:
            repository_keys.remove_key(key_id, actor=f"user:{request.user.get_username()}")
        except (PlatformError, EngineError) as error:
            record_admin_action(request, action="remove_repository_key", target_type=TARGET_TYPE,
                                target_id=key_id, status_code=_failure_status(error))
            self.message_user(request, error.message, messages.ERROR)
        else:
            record_admin_action(request, action="remove_repository_key", target_type=TARGET_TYPE,
                                target_id=key_id, status_code=204)
            self.message_user(request, f"Key {key_id} removed.", messages.SUCCESS)
        return HttpResponseRedirect(self._list_url())
