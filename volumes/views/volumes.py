"""`/api/v1/volumes`: list (paginated, filtered), create, retrieve, update, delete, refresh usage.

Thin: parse, call `volumes.services`, render with `VolumeSerializer`. `{id}` is the volume's
UUID or its name.
"""

from __future__ import annotations

import json

from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.actors import actor_of
from accounts.roles import Role
from accounts.scopes import VolumeScopeSupport, scope_of
from volumes import services
from volumes.filters import filter_volumes
from volumes.models import Volume, VolumeStatus
from storage_platform.openapi import error_responses
from volumes.serializers import VolumeSerializer, VolumeWriteSerializer

ID_PARAMETER = OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Volume UUID or name.")
LIST_PARAMETERS = [
    OpenApiParameter("name", OpenApiTypes.STR, description="Exact volume name."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=VolumeStatus.values),
    OpenApiParameter("policy", OpenApiTypes.STR, description="Policy name."),
    OpenApiParameter("label", OpenApiTypes.STR, many=True, description="key=value; repeat to AND several."),
    OpenApiParameter("label_selector", OpenApiTypes.STR, description="key=value,key2=value2 (AND)."),
]


def request_fields(request) -> dict | list | object:
    """The body as plain data; an HTML form (browsable API) becomes a dict without its CSRF field."""
    data = request.data
    if isinstance(data, QueryDict):
        # HTML forms send every field, empty ones as "": leave those out (defaults apply) and
        # let `labels` be typed as JSON text.
        data = {key: value for key, value in data.dict().items() if key != "csrfmiddlewaretoken" and value != ""}
        if isinstance(data.get("labels"), str):
            try:
                data["labels"] = json.loads(data["labels"])
            except ValueError:
                pass  # validation reports it as not an object
    return data


@extend_schema_view(
    list=extend_schema(parameters=LIST_PARAMETERS),
    create=extend_schema(request=VolumeWriteSerializer, responses={201: VolumeSerializer, **error_responses(409)}),
    retrieve=extend_schema(parameters=[ID_PARAMETER]),
    update=extend_schema(parameters=[ID_PARAMETER], request=VolumeWriteSerializer,
                         responses={200: VolumeSerializer, **error_responses(409)}),
    partial_update=extend_schema(parameters=[ID_PARAMETER], request=VolumeWriteSerializer,
                                 responses={200: VolumeSerializer, **error_responses(409)}),
    destroy=extend_schema(parameters=[ID_PARAMETER], responses={204: None, **error_responses(409)}),
)
class VolumeViewSet(viewsets.GenericViewSet):
    serializer_class = VolumeSerializer
    read_role = Role.READ
    write_role = Role.ADMIN
    volume_scope = VolumeScopeSupport.ENFORCED
    lookup_field = "pk"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"
    filter_backends: list = []  # filters are applied by volumes.filters (strict, 400 on bad input)

    def get_queryset(self):
        volumes = scope_of(self.request).volumes_of(Volume.objects.select_related("policy"))
        return services.with_last_backup(volumes).order_by("name", "id")

    def get_serializer_class(self):
        # The browsable API renders its create/update forms (and OPTIONS describes writes)
        # with this class, under the method of the form: show the writable fields there.
        if self.request is not None and self.request.method not in ("GET", "HEAD", "OPTIONS"):
            return VolumeWriteSerializer
        return VolumeSerializer

    def get_object(self) -> Volume:
        return services.find_volume(self.kwargs["id"], scope=scope_of(self.request))

    def list(self, request):
        queryset = filter_volumes(self.get_queryset(), request.query_params)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(VolumeSerializer(page, many=True).data)

    def create(self, request):
        # A new volume is outside any volume list a token was limited to when it was made.
        scope_of(request).require_all_volumes()
        volume = services.create_volume(request_fields(request), actor=actor_of(request))
        response = Response(VolumeSerializer(volume).data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/volumes/{volume.id}"
        return response

    def retrieve(self, request, id=None):
        return Response(VolumeSerializer(self.get_object()).data)

    def update(self, request, id=None):
        # PUT and PATCH both update only the fields sent: a read-modify-write round trip
        # works, and a PUT that omits a field does not reset it.
        volume = services.update_volume(self.get_object(), request_fields(request), actor=actor_of(request))
        return Response(VolumeSerializer(volume).data)

    def partial_update(self, request, id=None):
        return self.update(request, id)

    def destroy(self, request, id=None):
        services.delete_volume(self.get_object(), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[ID_PARAMETER], request=None, responses={200: VolumeSerializer})
    @action(detail=True, methods=["post"], url_path="refresh-usage")
    def refresh_usage(self, request, id=None):
        """Walk the volume's storage and store its used bytes (O(files); not needed after
        uploads through the data plane, which keep the count current)."""
        volume = self.get_object()
        services.refresh_usage(volume)
        return Response(VolumeSerializer(volume).data)
