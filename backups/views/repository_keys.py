"""`/api/v1/repository-keys`: list, add, remove and rotate the backup repository's keys
(admin only). Thin: `backups.repository_keys` does the work.

A generated secret appears once, in the answer to the POST that made it (`Cache-Control:
no-store`), like an API token; the list never shows key material. See docs/security.md,
"Repository keys".
"""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.actors import actor_of
from accounts.roles import Role
from backups import repository_keys
from backups.views import request_body
from storage_platform.errors import BadRequest
from storage_platform.openapi import error_responses


class RepositoryKeySerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The key object `keys/<id>` of the repository (a hash of the wrapped "
                                         "key object, not key material).")
    created = serializers.DateTimeField(allow_null=True)
    kdf = serializers.CharField(help_text="`hkdf` (a 32-byte random secret) or `scrypt` (a passphrase).")
    in_use = serializers.BooleanField(help_text="The key the platform's secret opens now.")
    orphan = serializers.BooleanField(help_text="Unwraps with the platform's secret but does not open the "
                                                "repository (docs/runbook.md, orphan keys).")
    secret_source = serializers.ChoiceField(
        choices=["environment", "platform"], allow_null=True,
        help_text="For the key in use: `environment` (REPOSITORY_KEY) or `platform` (stored by a rotation).")


class NewRepositoryKeySerializer(RepositoryKeySerializer):
    secret = serializers.CharField(help_text="The new key's secret (64 hex digits). Shown in this answer only.")


class RotatedRepositoryKeySerializer(NewRepositoryKeySerializer):
    removed_key = serializers.CharField(allow_null=True, help_text="The key in use before, now removed; null if "
                                                                   "the storage refused (see `removal_error`).")
    removal_error = serializers.CharField(allow_blank=True)


# Every operation opens the repository: its storage may fail (502) or be unreachable (503).
STORAGE_ERRORS = error_responses(502, 503)


def refuse_body_fields(request) -> None:
    """These operations take no input: a body with fields (a passphrase, say) is a mistake
    worth a 400, rather than a silently generated secret the caller did not expect."""
    body = request_body(request)
    if body is None or body == {}:
        return
    if not isinstance(body, dict):
        raise BadRequest("The body must be empty or {}.", code="validation_error",
                         detail={"non_field_errors": ["Expected no body."]})
    raise BadRequest("This operation takes no fields.", code="validation_error",
                     detail={str(name)[:80]: ["Unknown field."] for name in list(body)[:20]})


def secret_response(new_key: repository_keys.NewRepositoryKey, serializer_class) -> Response:
    body = {**asdict(new_key.key), "secret": new_key.secret, "removed_key": new_key.removed_key,
            "removal_error": new_key.removal_error}
    response = Response(serializer_class(body).data, status=status.HTTP_201_CREATED)
    response["Cache-Control"] = "no-store"  # the secret must not sit in any cache
    return response


@extend_schema_view(
    list=extend_schema(responses={200: RepositoryKeySerializer(many=True), **STORAGE_ERRORS}),
    create=extend_schema(request=None, responses={201: NewRepositoryKeySerializer, **error_responses(400, 409),
                                                  **STORAGE_ERRORS}),
    destroy=extend_schema(responses={204: None, **error_responses(409), **STORAGE_ERRORS}),
    rotate=extend_schema(request=None, responses={201: RotatedRepositoryKeySerializer, **error_responses(400, 409),
                                                  **STORAGE_ERRORS}),
)
class RepositoryKeyViewSet(viewsets.GenericViewSet):
    """The repository's keys: list; add one (its secret is in this answer only); remove one
    (not the last, not the one in use); rotate (new key, platform switched, old key removed)."""

    serializer_class = RepositoryKeySerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    lookup_value_regex = "[^/]+"
    filter_backends: list = []

    def list(self, request):
        page = self.paginate_queryset(repository_keys.list_keys())
        return self.get_paginated_response(RepositoryKeySerializer(page, many=True).data)

    def create(self, request):
        """Add a key under a generated secret; the platform keeps using its own."""
        refuse_body_fields(request)
        return secret_response(repository_keys.add_key(actor=actor_of(request)), NewRepositoryKeySerializer)

    def destroy(self, request, pk=None):
        """Remove a key: 409 `last_key`, `key_in_use` or `orphan_key` when it must stay."""
        repository_keys.remove_key(pk, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=False, methods=["post"])
    def rotate(self, request):
        """Add a key under a generated secret, switch the platform to it, remove the old key."""
        refuse_body_fields(request)
        return secret_response(repository_keys.rotate(actor=actor_of(request)), RotatedRepositoryKeySerializer)
