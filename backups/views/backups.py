"""`/api/v1/backups`: trigger (one volume or all), list, retrieve, delete, restore, verify,
drill, browse a snapshot's files and download one file. Also `/api/v1/volumes/{id}/backups`.

Thin: validate the body with a serializer, call `backups.services`, render the result.
Triggers answer 202 with the backup(s) carrying `job`; restore, verify and drill answer 202
with the job.
"""

from __future__ import annotations

import uuid

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.actors import actor_of
from accounts.roles import Role
from accounts.scopes import Verb, VolumeScopeSupport, scope_of
from backups import services
from backups.errors import BackupNotFound
from backups.models import Backup, BackupStatus, BackupTrigger
from backups.runners.results import to_jsonable
from backups.serializers import (
    BackupSerializer,
    BackupsTriggeredSerializer,
    JobSerializer,
    RestoreSerializer,
    SnapshotListingSerializer,
    TriggerSerializer,
    VerifySerializer,
)
from backups.views import idempotency_key, request_body
from backups.volume_access import VolumeNotFound, is_volume_name
from storage_platform.errors import BadRequest
from storage_platform.openapi import error_responses
from storage_platform.pagination import StandardPagination

LIST_PARAMETERS = [
    OpenApiParameter("volume", OpenApiTypes.STR, description="Volume id or name."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=BackupStatus.values),
]
PATH_PARAMETER = OpenApiParameter("path", OpenApiTypes.STR, description="Directory inside the snapshot; `/` if omitted.")
FILE_PATH_PARAMETER = OpenApiParameter("path", OpenApiTypes.STR, required=True, description="File inside the snapshot.")
IDEMPOTENCY_PARAMETER = OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER,
                                         description="Repeat a request safely: the same key returns the same result.")
# What reading or changing the repository can add: a locked repository, a failing or
# unreachable storage backend.
REPOSITORY_ERRORS = error_responses(409, 502, 503)
TRIGGER_RESULT = PolymorphicProxySerializer(
    component_name="BackupTriggerResult", serializers=[BackupSerializer, BackupsTriggeredSerializer],
    resource_type_field_name=None,
)


def filter_backups(queryset, params):
    """Apply `volume` (id or name) and `status` filters; unknown values are a 400."""
    volume = params.get("volume")
    if volume:
        try:
            queryset = queryset.filter(volume_id=uuid.UUID(volume))
        except ValueError:
            queryset = queryset.filter(volume_name=volume) if is_volume_name(volume) else queryset.none()
    state = params.get("status")
    if state:
        if state not in BackupStatus.values:
            raise BadRequest(f"status must be one of {', '.join(BackupStatus.values)}.",
                             code="validation_error", detail={"status": [f"Unknown status {state!r}."]})
        queryset = queryset.filter(status=state)
    return queryset


def trigger_response(request, volume_reference) -> Response:
    volume = services.find_volume(volume_reference, scope=scope_of(request))
    backup = services.trigger_backup(volume, trigger=BackupTrigger.API, actor=actor_of(request),
                                     idempotency_key=idempotency_key(request))
    return Response(BackupSerializer(backup).data, status=status.HTTP_202_ACCEPTED)


def clean_snapshot_path(raw: str | None, *, required: bool) -> str:
    if raw is None or raw == "":
        if required:
            raise BadRequest("The path query parameter is required.", code="validation_error",
                             detail={"path": ["This parameter is required."]})
        return "/"
    if "\x00" in raw or len(raw) > 4096:
        raise BadRequest("The path is not valid.", code="invalid_path", detail={"path": ["Not a valid path."]})
    return raw if raw.startswith("/") else "/" + raw


@extend_schema_view(
    list=extend_schema(parameters=LIST_PARAMETERS),
    create=extend_schema(request=TriggerSerializer, parameters=[IDEMPOTENCY_PARAMETER],
                         responses={202: TRIGGER_RESULT, **error_responses(404, 409)},
                         description="`{\"volume\": ...}` answers with the backup; `{\"all\": true}` with "
                                     "`{count, results, skipped}`."),
    destroy=extend_schema(responses={204: None, **REPOSITORY_ERRORS}),
    restore=extend_schema(request=RestoreSerializer, parameters=[IDEMPOTENCY_PARAMETER],
                          responses={202: JobSerializer, **error_responses(409)}),
    verify=extend_schema(request=VerifySerializer, responses={202: JobSerializer, **error_responses(409)}),
    drill=extend_schema(request=None, parameters=[IDEMPOTENCY_PARAMETER],
                        responses={202: JobSerializer, **error_responses(409)}),
    files=extend_schema(parameters=[PATH_PARAMETER], responses={200: SnapshotListingSerializer, **REPOSITORY_ERRORS}),
    download=extend_schema(parameters=[FILE_PATH_PARAMETER],
                           responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **REPOSITORY_ERRORS}),
)
class BackupViewSet(viewsets.GenericViewSet):
    """Backups: one snapshot of one volume each."""

    serializer_class = BackupSerializer
    read_role = Role.READ
    write_role = Role.ADMIN
    action_roles = {"create": Role.BACKUP, "verify": Role.BACKUP, "drill": Role.BACKUP, "restore": Role.ADMIN,
                    "destroy": Role.ADMIN}
    # A drill restores into a scratch folder and compares: it proves the backup, like a verify.
    action_verbs = {"create": Verb.BACKUP, "verify": Verb.VERIFY, "drill": Verb.VERIFY, "restore": Verb.RESTORE}
    volume_scope = VolumeScopeSupport.ENFORCED
    lookup_value_regex = "[^/]+"
    filter_backends: list = []  # strict filters in filter_backups

    def get_queryset(self):
        return scope_of(self.request).of_volumes(
            Backup.objects.select_related("job", "last_drill").prefetch_related("replicas")).order_by("-created_at", "id")

    def get_object(self) -> Backup:
        reference = self.kwargs["pk"]
        try:
            backup = self.get_queryset().filter(pk=uuid.UUID(reference)).first()
        except ValueError:
            backup = None
        if backup is None:
            raise BackupNotFound(f"Backup {reference[:80]!r} does not exist.", detail={"backup": reference[:80]})
        return backup

    def list(self, request):
        page = self.paginate_queryset(filter_backups(self.get_queryset(), request.query_params))
        return self.get_paginated_response(BackupSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(BackupSerializer(self.get_object()).data)

    def create(self, request):
        """Trigger a backup of one volume (`{"volume": id-or-name}`) or of all (`{"all": true}`)."""
        body = TriggerSerializer(data=request_body(request))
        body.is_valid(raise_exception=True)
        if not body.validated_data.get("all"):
            return trigger_response(request, body.validated_data["volume"])
        # A scoped token's "all" is all of its volumes.
        volumes = scope_of(request).volumes_of(services.available_volumes())
        backups, skipped = services.trigger_backup_all(trigger=BackupTrigger.API, actor=actor_of(request),
                                                       volumes=volumes)
        return Response({"count": len(backups), "results": BackupSerializer(backups, many=True).data,
                         "skipped": skipped}, status=status.HTTP_202_ACCEPTED)

    def destroy(self, request, pk=None):
        """Forget the backup's snapshot (its data is freed by the next prune) and delete the row."""
        services.delete_backup(self.get_object(), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        """Restore in place (`{}`), into another volume (`{"volume": ...}`) or a new one (`{"new_volume_name": ...}`,
        optionally only `"paths": [...]` of the snapshot)."""
        backup = self.get_object()
        body = RestoreSerializer(data=request_body(request) or {})
        body.is_valid(raise_exception=True)
        target = body.validated_data.get("volume")
        scope = scope_of(request)
        if body.validated_data.get("new_volume_name"):
            scope.require_all_volumes()  # the new volume would be outside a limited scope
        job = services.start_restore(
            backup, target_volume=services.find_volume(target, scope=scope) if target else None,
            new_volume_name=body.validated_data.get("new_volume_name"), size_gb=body.validated_data.get("size_gb"),
            paths=body.validated_data.get("paths"), actor=actor_of(request), idempotency_key=idempotency_key(request),
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        """Verify the repository holding this backup, reading `read_data_percent` of its data."""
        backup = self.get_object()
        body = VerifySerializer(data=request_body(request) or {})
        body.is_valid(raise_exception=True)
        job = services.start_verify(read_data_percent=body.validated_data["read_data_percent"],
                                    actor=actor_of(request), backup=backup)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def drill(self, request, pk=None):
        """Prove the backup restores: a worker restores its snapshot into a scratch folder (never a
        volume), checks every file, directory and symlink against the snapshot (content hash,
        size, mode) and removes the folder. Takes no body."""
        backup = self.get_object()
        request_body(request)  # a malformed body is a 400 here as everywhere, though none is needed
        job = services.start_drill(backup, actor=actor_of(request), idempotency_key=idempotency_key(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["get"])
    def files(self, request, pk=None):
        """List one directory of the backup's snapshot (`?path=/dir`)."""
        backup = self.get_object()
        services.ensure_readable(backup)
        path = clean_snapshot_path(request.query_params.get("path"), required=False)
        entries = services.list_backup_dir(backup, path)
        return Response({"backup": str(backup.pk), "path": path, "entries": to_jsonable(entries)})

    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """Stream one file of the backup's snapshot (`?path=/dir/file`)."""
        backup = self.get_object()
        services.ensure_readable(backup)
        path = clean_snapshot_path(request.query_params.get("path"), required=True)
        response = StreamingHttpResponse(services.open_backup_file(backup, path),
                                         content_type="application/octet-stream")
        name = path.rstrip("/").rsplit("/", 1)[-1] or "file"
        response["Content-Disposition"] = f"attachment; filename*=UTF-8''{_quote(name)}"
        return response


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


class VolumeBackupsView(APIView):
    """`/api/v1/volumes/{id}/backups`: GET lists the volume's backups, POST triggers one (202)."""

    read_role = Role.READ
    write_role = Role.BACKUP
    write_verb = Verb.BACKUP
    volume_scope = VolumeScopeSupport.ENFORCED
    serializer_class = BackupSerializer
    pagination_class = StandardPagination

    @extend_schema(parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=BackupStatus.values)],
                   responses=BackupSerializer(many=True))
    def get(self, request, id):
        scope = scope_of(request)
        queryset = scope.of_volumes(Backup.objects.select_related("job", "last_drill").prefetch_related("replicas")).order_by("-created_at", "id")
        try:
            volume = services.find_volume(id, scope=scope)
            queryset = queryset.filter(volume_id=volume.pk)
        except VolumeNotFound:
            # A deleted volume's backups stay listable by its id or name.
            queryset = filter_backups(queryset, {"volume": id})
            if not queryset.exists():
                raise
        queryset = filter_backups(queryset, {"status": request.query_params.get("status")})
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(BackupSerializer(page, many=True).data)

    @extend_schema(request=None, parameters=[IDEMPOTENCY_PARAMETER], responses={202: BackupSerializer, **error_responses(409)})
    def post(self, request, id):
        return trigger_response(request, id)
