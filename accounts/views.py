"""Token API (`/api/v1/tokens`) and audit API (`/api/v1/audit`), admin only."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from accounts.models import ApiToken, AuditEvent, AuditResult, TokenSource
from accounts.roles import Role
from accounts.scopes import build_scope
from accounts.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    AuditEventSerializer,
)
from accounts.tokens import create_token, expiry_from_days
from storage_platform.openapi import error_responses


def actor_name(request) -> str:
    user = getattr(request, "user", None)
    return getattr(user, "username", "") or ""


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                   viewsets.GenericViewSet):
    """List, create (the secret is in this answer only), retrieve and revoke API tokens.

A token may be created with a `scope` (volumes, label selector, verbs) that narrows its role.

    DELETE revokes: the row stays so audit events keep naming it; repeating it is a no-op.
    """

    read_role = Role.ADMIN
    write_role = Role.ADMIN
    queryset = ApiToken.objects.all()
    serializer_class = ApiTokenSerializer
    filterset_fields = ["role", "source"]

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer, **error_responses(409)})
    def create(self, request):
        incoming = ApiTokenCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        scope = build_scope(data["role"], **data.get("scope", {}))
        token, plaintext = create_token(
            data["name"], data["role"], expires_at=expiry_from_days(data.get("expires_in_days")),
            source=TokenSource.API, created_by=actor_name(request), scope=scope,
        )
        body = dict(ApiTokenSerializer(token).data, token=plaintext)
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"  # the secret must not sit in any cache
        return response

    def perform_destroy(self, token: ApiToken) -> None:
        token.revoke()


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter()
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    # `target` matches either a target id or "type:id".
    target = django_filters.CharFilter(method="filter_target")
    result = django_filters.ChoiceFilter(choices=AuditResult.choices)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["actor", "target_type", "target_id", "result", "method"]

    def filter_target(self, queryset, name, value):
        target_type, separator, target_id = value.partition(":")
        if separator:
            return queryset.filter(target_type=target_type, target_id=target_id)
        return queryset.filter(target_id=value)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log, newest first; filter by actor, target, result, since/until."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
