"""Policy API (`/api/v1/policies`): read to list and retrieve, admin to create, change, delete.

Saving a policy re-syncs its django-celery-beat tasks in the same transaction
(backups/scheduling/sync.py via signals), so the admin shows the change at once.
Deleting answers 409 for the default policy and for a policy that volumes still use.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.actors import actor_of
from accounts.roles import Role
from accounts.scopes import Verb, VolumeScopeSupport
from backups import services
from backups.models import Policy
from backups.serializers import JobSerializer
from backups.views import request_body
from backups.views.policy_serializers import PolicySerializer
from storage_platform.errors import Conflict
from storage_platform.openapi import error_responses


class PolicyInUse(Conflict):
    """The policy is still used by volumes; move them to another policy first."""

    code = "policy_in_use"


class DefaultPolicyProtected(Conflict):
    """The default policy cannot be deleted."""

    code = "default_policy_protected"


@extend_schema_view(destroy=extend_schema(responses={204: None, **error_responses(409)}),
                    replicate=extend_schema(request=None, responses={202: JobSerializer, **error_responses(400, 404, 409)}))
class PolicyViewSet(viewsets.ModelViewSet):
    """Backup policies: schedule and time zone, retention, RPO, verify and prune schedules."""

    read_role = Role.READ
    write_role = Role.ADMIN
    # Replication copies backups that exist to where the operator configured: the backup
    # role and verb, as triggering a backup.
    action_roles = {"replicate": Role.BACKUP}
    action_verbs = {"replicate": Verb.BACKUP}
    # Policies hold no volume data; changing one changes the schedule of every volume using it.
    volume_scope = VolumeScopeSupport.READS_ONLY
    serializer_class = PolicySerializer
    queryset = Policy.objects.annotate(volume_total=Count("volumes")).order_by("name")
    filterset_fields = ["enabled", "is_default", "name"]

    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.save()

    def perform_update(self, serializer):
        with transaction.atomic():
            serializer.save()

    @action(detail=True, methods=["post"])
    def replicate(self, request, pk=None):
        """Copy the policy's backups missing from its replication target's replica now: 202
        with the replicate job (the active one, when one is queued or running). Takes no body."""
        policy = self.get_object()
        request_body(request)
        job = services.start_replicate(policy=policy, actor=actor_of(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    def perform_destroy(self, policy: Policy) -> None:
        if policy.is_default:
            raise DefaultPolicyProtected(detail={"policy": policy.pk})
        with transaction.atomic():
            in_use = policy.volumes.count()
            if in_use:
                raise PolicyInUse(
                    f"Policy '{policy.name}' is used by {in_use} volume(s); move them to another policy first.",
                    detail={"policy": policy.pk, "volume_count": in_use},
                )
            policy.delete()
