"""How a volume looks in the API. Output only: input is validated by `volumes.validation`.

Field names are a contract with automation (Ansible, scripts, tests): `id, name, size_gb,
status, path, used_bytes, labels, rpo_hours, policy, created_at`, plus `updated_at, pool,
node, quota_bytes, status_message, policy_id, rpo_minutes`. `rpo_minutes` is the effective
RPO; `rpo_hours` is the same in hours, fractional below whole hours (storage_platform/rpo.py).
"""

from __future__ import annotations

from rest_framework import serializers

from volumes.models import MAX_SIZE_GB, Volume
from storage_platform.rpo import MAX_RPO_HOURS, MAX_RPO_MINUTES
from storage_platform.rpo_fields import RpoHoursField


class VolumeSerializer(serializers.ModelSerializer):
    policy = serializers.SerializerMethodField(help_text="The policy's name, or null.")
    policy_id = serializers.IntegerField(read_only=True, allow_null=True)
    rpo_minutes = serializers.IntegerField(read_only=True,
                                           help_text="Effective RPO in minutes: the override, else the policy's.")
    rpo_hours = RpoHoursField(read_only=True, help_text="rpo_minutes in hours (0.25 for 15 minutes).")
    quota_bytes = serializers.IntegerField(read_only=True)
    last_backup = serializers.SerializerMethodField(help_text="Newest completed backup: {id, completed_at}, or null.")

    class Meta:
        model = Volume
        fields = ["id", "name", "size_gb", "status", "status_message", "path", "used_bytes", "quota_bytes",
                  "labels", "rpo_minutes", "rpo_hours", "policy", "policy_id", "pool", "node", "last_backup", "created_at",
                  "updated_at"]
        read_only_fields = fields

    def get_last_backup(self, volume: Volume) -> dict | None:
        if not hasattr(volume, "last_backup_at"):
            # Not annotated (a volume just created or updated): one query for this one row.
            from backups import selectors

            newest = selectors.newest_completed_backups(volume_id=volume.pk).values("id", "completed_at").first()
            volume.last_backup_id = newest["id"] if newest else None
            volume.last_backup_at = newest["completed_at"] if newest else None
        if volume.last_backup_id is None:
            return None
        completed_at = volume.last_backup_at
        return {"id": str(volume.last_backup_id),
                "completed_at": serializers.DateTimeField().to_representation(completed_at) if completed_at else None}

    def get_policy(self, volume: Volume) -> str | None:
        return volume.policy.name if volume.policy_id is not None and volume.policy is not None else None


class VolumeWriteSerializer(serializers.Serializer):
    """The request body of create and update, for the OpenAPI schema and the browsable API."""

    name = serializers.RegexField(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", max_length=63,
                                  help_text="DNS label; required on create, cannot change.")
    size_gb = serializers.IntegerField(min_value=1, max_value=MAX_SIZE_GB, help_text="Quota in GiB.")
    labels = serializers.DictField(child=serializers.CharField(), required=False)
    policy = serializers.CharField(required=False, allow_null=True,
                                   help_text="Policy id or name; the default policy when omitted on create.")
    rpo_minutes = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_RPO_MINUTES,
                                           help_text="Overrides the policy's RPO, in minutes; null follows the policy.")
    rpo_hours = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_RPO_HOURS,
                                         help_text="The override in whole hours (instead of rpo_minutes).")
    pool = serializers.CharField(required=False, help_text="Storage pool (default: 'default').")
    node = serializers.CharField(required=False, allow_blank=True)


class FileWriteResultSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


class FileEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["file", "dir", "symlink", "other"])
    size = serializers.IntegerField()
    mode = serializers.CharField(help_text="Octal permission bits, e.g. 0644.")
    mtime = serializers.DateTimeField()
    target = serializers.CharField(required=False, allow_null=True, help_text="Symlinks only.")
