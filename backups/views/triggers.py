"""Trigger endpoints outside `/backups`: the short `POST /api/v1/backup` (`{"volume": ...}`)
and repository-wide `POST /api/v1/verify` (`{"read_data_percent": n}`). Both answer 202."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.actors import actor_of
from accounts.roles import Role
from accounts.scopes import Verb, VolumeScopeSupport
from backups import services
from backups.serializers import BackupSerializer, JobSerializer, VerifySerializer, VolumeReferenceSerializer
from backups.views import request_body
from backups.views.backups import IDEMPOTENCY_PARAMETER, trigger_response
from storage_platform.openapi import error_responses


class BackupTriggerView(APIView):
    """`POST /api/v1/backup` with `{"volume": "<id or name>"}`: 202 with the backup."""

    read_role = Role.READ
    write_role = Role.BACKUP
    write_verb = Verb.BACKUP
    volume_scope = VolumeScopeSupport.ENFORCED  # trigger_response looks the volume up in scope

    @extend_schema(request=VolumeReferenceSerializer, parameters=[IDEMPOTENCY_PARAMETER],
                   responses={202: BackupSerializer, **error_responses(404, 409)})
    def post(self, request):
        body = VolumeReferenceSerializer(data=request_body(request))
        body.is_valid(raise_exception=True)
        return trigger_response(request, body.validated_data["volume"])


class VerifyView(APIView):
    """`POST /api/v1/verify` with `{"read_data_percent": 0-100}`: 202 with the verify job."""

    read_role = Role.READ
    write_role = Role.BACKUP
    write_verb = Verb.VERIFY
    # Repository-wide: refused to a token limited to volumes (accounts.scopes).

    @extend_schema(request=VerifySerializer, responses={202: JobSerializer})
    def post(self, request):
        body = VerifySerializer(data=request_body(request) or {})
        body.is_valid(raise_exception=True)
        job = services.start_verify(read_data_percent=body.validated_data["read_data_percent"],
                                    actor=actor_of(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
