"""`/api/v1/jobs`: list (filter `kind`, `status`, `volume`), retrieve (progress), cancel.

Cancel needs the `backup` role for backup, verify and drill jobs (what that role may start)
and `admin` for the rest (restores, prunes).
"""

from __future__ import annotations

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from accounts.actors import actor_of
from accounts.permissions import request_role
from accounts.roles import Role, role_allows
from accounts.scopes import Verb, VolumeScopeSupport, scope_of
from backups import services, volume_access
from backups.models import Job, JobKind, JobStatus
from backups.serializers import JobSerializer
from storage_platform.errors import BadRequest, NotFound
from storage_platform.openapi import error_responses

CANCEL_ROLE = {JobKind.BACKUP: Role.BACKUP, JobKind.VERIFY: Role.BACKUP, JobKind.DRILL: Role.BACKUP,
               JobKind.REPLICATE: Role.BACKUP}
CANCEL_VERB = {JobKind.BACKUP: Verb.BACKUP, JobKind.VERIFY: Verb.VERIFY, JobKind.DRILL: Verb.VERIFY,
               JobKind.RESTORE: Verb.RESTORE, JobKind.REPLICATE: Verb.BACKUP}
LIST_PARAMETERS = [
    OpenApiParameter("kind", OpenApiTypes.STR, enum=JobKind.values),
    OpenApiParameter("status", OpenApiTypes.STR, enum=JobStatus.values),
    OpenApiParameter("volume", OpenApiTypes.STR, description="Volume id or name."),
]


class JobNotFound(NotFound):
    """The job does not exist."""

    code = "job_not_found"


def filter_jobs(queryset, params):
    for name, choices in (("kind", JobKind.values), ("status", JobStatus.values)):
        value = params.get(name)
        if value:
            if value not in choices:
                raise BadRequest(f"{name} must be one of {', '.join(choices)}.", code="validation_error",
                                 detail={name: [f"Unknown {name} {value!r}."]})
            queryset = queryset.filter(**{name: value})
    volume = params.get("volume")
    if volume:
        try:
            queryset = queryset.filter(volume_id=uuid.UUID(volume))
        except ValueError:
            queryset = queryset.filter(volume__name=volume) if volume_access.is_volume_name(volume) else queryset.none()
    return queryset


@extend_schema_view(list=extend_schema(parameters=LIST_PARAMETERS),
                    cancel=extend_schema(request=None, responses={202: JobSerializer, **error_responses(409)}))
class JobViewSet(viewsets.GenericViewSet):
    """Long operations (backup, restore, verify, prune, drill) and their progress."""

    serializer_class = JobSerializer
    read_role = Role.READ
    write_role = Role.ADMIN
    action_roles = {"cancel": Role.BACKUP}  # narrowed per job kind in `cancel`
    action_verbs = {"cancel": None}  # per job kind in `cancel`
    volume_scope = VolumeScopeSupport.ENFORCED
    lookup_value_regex = "[^/]+"
    filter_backends: list = []

    def get_queryset(self):
        jobs = Job.objects.select_related("policy", "backup")
        return scope_of(self.request).of_volumes(jobs).order_by("-created_at", "id")

    def get_object(self) -> Job:
        reference = self.kwargs["pk"]
        try:
            job = self.get_queryset().filter(pk=uuid.UUID(reference)).first()
        except ValueError:
            job = None
        if job is None:
            raise JobNotFound(f"Job {reference[:80]!r} does not exist.", detail={"job": reference[:80]})
        return job

    def list(self, request):
        page = self.paginate_queryset(filter_jobs(self.get_queryset(), request.query_params))
        return self.get_paginated_response(JobSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(JobSerializer(self.get_object()).data)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued job at once, or ask a running one to stop at its next chunk (202)."""
        job = self.get_object()
        if not role_allows(request_role(request), CANCEL_ROLE.get(job.kind, Role.ADMIN)):
            raise PermissionDenied(f"Cancelling a {job.kind} job needs the admin role.")
        scope_of(request).require_verb(CANCEL_VERB.get(job.kind, Verb.MANAGE))
        job = services.cancel_job(job, actor=actor_of(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
