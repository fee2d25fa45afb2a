"""`GET /api/v1/replication-targets`: the replication targets the operator configured
(`REPLICATION_TARGETS`), their kind and location without credentials, the Object Lock every
copy into it gets (`lock_mode`, `lock_days`: not a secret), the policies that use
each, and its lag (`backups.replication`). Read role; targets are defined in settings only,
so there is nothing to write here."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.roles import Role
from accounts.scopes import VolumeScopeSupport
from backups import replication
from backups.models import Policy
from backups.replication_targets import all_targets


class ReplicationTargetSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["local", "s3"])
    location = serializers.CharField(help_text="A directory or s3://bucket/prefix; credentials are never shown.")
    endpoint_url = serializers.CharField(allow_null=True)
    lock_mode = serializers.ChoiceField(
        choices=["governance", "compliance"], allow_null=True,
        help_text="S3 Object Lock mode of every copy written to this target (null: copies are not locked).")
    lock_days = serializers.IntegerField(
        allow_null=True, help_text="Each copy is locked this many days from the replicate run that writes it; "
                                   "packs it reuses are extended as long.")
    policies = serializers.ListField(child=serializers.CharField(), help_text="Policies replicating to it.")
    lag_seconds = serializers.FloatField(
        help_text="Seconds since the oldest backup that should be on this target and is not there completed "
                  "(0 when all are there): backup_replication_lag_seconds.")


class ReplicationTargetListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = ReplicationTargetSerializer(many=True)


class ReplicationTargetsView(APIView):
    read_role = Role.READ
    write_role = Role.ADMIN
    # Names where copies go, no volume data: a token limited to volumes may read it.
    volume_scope = VolumeScopeSupport.READS_ONLY

    @extend_schema(responses={200: ReplicationTargetListSerializer})
    def get(self, request):
        now = timezone.now()
        oldest = replication.oldest_unreplicated()
        users: dict[str, list[str]] = {}
        for name, target in Policy.objects.exclude(replication_target="").values_list("name", "replication_target"):
            users.setdefault(target, []).append(name)
        results = [{**target.public(), "policies": users.get(name, []),
                    "lag_seconds": replication.lag_seconds(oldest, name, now)}
                   for name, target in all_targets().items()]
        return Response({"count": len(results), "results": results})
