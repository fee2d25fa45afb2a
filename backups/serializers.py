"""How backups and jobs look in the API, and the request bodies of their actions.

Field names are a contract with automation (Ansible, scripts, tests):
backup `id, volume, volume_name, status, job, created_at, completed_at, stats` (+ `snapshot_id,
trigger, error, started_at, forgotten_at, locked_until, last_drill {job, status, error_code,
created_at, finished_at}`); job `id, kind, status, progress, error,
created_at, finished_at` (+ `attempts, max_attempts, worker, heartbeat_at, volume, result,
error_code, queue, started_at, cancel_requested`).
"""

from __future__ import annotations

from rest_framework import serializers

from backups.models import Backup, Job


class ProgressSerializer(serializers.Serializer):
    bytes_done = serializers.IntegerField()
    bytes_total = serializers.IntegerField()
    percent = serializers.FloatField(allow_null=True)
    message = serializers.CharField()


def job_progress(job: Job) -> dict:
    total = job.progress_total
    percent = round(min(job.progress_done / total, 1.0) * 100, 1) if total > 0 else (100.0 if job.status == "succeeded" else None)
    return {"bytes_done": job.progress_done, "bytes_total": total, "percent": percent,
            "message": job.progress_message}


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    volume = serializers.UUIDField(source="volume_id", read_only=True, allow_null=True)
    policy = serializers.SerializerMethodField()
    backup = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "kind", "status", "progress", "error", "error_code", "created_at", "started_at",
                  "finished_at", "attempts", "max_attempts", "worker", "heartbeat_at", "queue", "volume",
                  "backup", "policy", "params", "result", "cancel_requested", "created_by"]
        read_only_fields = fields

    def get_progress(self, job: Job) -> dict:
        return ProgressSerializer(job_progress(job)).data

    def get_policy(self, job: Job) -> str | None:
        return job.policy.name if job.policy_id and job.policy else None

    def get_backup(self, job: Job) -> str | None:
        if job.kind == "backup":
            backup = getattr(job, "backup", None)
            return str(backup.pk) if backup else None
        return job.params.get("backup")


class DrillSummarySerializer(serializers.ModelSerializer):
    """The newest restore drill of a backup, in short (the job has the whole report)."""

    job = serializers.UUIDField(source="id", read_only=True)

    class Meta:
        model = Job
        fields = ["job", "status", "error_code", "created_at", "finished_at"]
        read_only_fields = fields


class BackupReplicaSerializer(serializers.Serializer):
    target = serializers.CharField(help_text="The replication target whose replica holds this backup's snapshot.")
    replicated_at = serializers.DateTimeField()


class BackupSerializer(serializers.ModelSerializer):
    volume = serializers.UUIDField(source="volume_id", read_only=True)
    job = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)
    job_status = serializers.SerializerMethodField()
    last_drill = DrillSummarySerializer(read_only=True, allow_null=True,
                                        help_text="The newest restore drill of this backup; null when never drilled.")
    replicas = BackupReplicaSerializer(many=True, read_only=True,
                                       help_text="The replication targets holding a copy of this backup's snapshot.")

    class Meta:
        model = Backup
        fields = ["id", "volume", "volume_name", "status", "job", "job_status", "trigger", "snapshot_id",
                  "created_at", "started_at", "completed_at", "forgotten_at", "locked_until", "stats", "error",
                  "last_drill", "replicas"]
        read_only_fields = fields

    def get_job_status(self, backup: Backup) -> str | None:
        return backup.job.status if backup.job_id and backup.job else None


# --- request bodies (strict: wrong types are 400 with the field named) ---------------------
class StrictCharField(serializers.CharField):
    """A string and only a string: DRF's CharField would turn 123 or 1.5 into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TriggerSerializer(serializers.Serializer):
    """`POST /backups`: `{"volume": "<id or name>"}` or `{"all": true}`."""

    volume = StrictCharField(required=False, max_length=255)
    all = serializers.BooleanField(required=False, default=False)

    def validate_all(self, value):
        if not isinstance(self.initial_data.get("all", False), bool):
            raise serializers.ValidationError("Must be true or false.")
        return value

    def validate(self, attrs):
        if attrs.get("all") and attrs.get("volume"):
            raise serializers.ValidationError("Give either volume or all, not both.")
        if not attrs.get("all") and not attrs.get("volume"):
            raise serializers.ValidationError({"volume": ["This field is required (or all: true)."]})
        return attrs


class VolumeReferenceSerializer(serializers.Serializer):
    """`POST /backup` (the short trigger endpoint): `{"volume": "<id or name>"}`."""

    volume = StrictCharField(max_length=255)


class RestoreSerializer(serializers.Serializer):
    """`POST /backups/{id}/restore`: `{}` (in place), `{"new_volume_name": ...}` or `{"volume": ...}`."""

    new_volume_name = StrictCharField(required=False, max_length=63)
    volume = StrictCharField(required=False, max_length=255, help_text="Restore in place into this volume.")
    size_gb = serializers.IntegerField(required=False, min_value=1, help_text="Quota of the new volume.")
    paths = serializers.ListField(child=StrictCharField(max_length=4096), required=False, max_length=100,
                                  help_text="Restore only these paths of the snapshot (with new_volume_name).")

    def validate(self, attrs):
        if attrs.get("new_volume_name") and attrs.get("volume"):
            raise serializers.ValidationError("Give either volume or new_volume_name, not both.")
        if attrs.get("size_gb") and not attrs.get("new_volume_name"):
            raise serializers.ValidationError({"size_gb": ["Only with new_volume_name."]})
        if attrs.get("paths") and not attrs.get("new_volume_name"):
            raise serializers.ValidationError({"paths": ["Only with new_volume_name."]})
        return attrs


class VerifySerializer(serializers.Serializer):
    read_data_percent = serializers.FloatField(required=False, default=0.0, min_value=0.0, max_value=100.0)


# --- response bodies that are not a model (for the OpenAPI schema) -------------------------
class SkippedVolumeSerializer(serializers.Serializer):
    volume = serializers.UUIDField()
    volume_name = serializers.CharField()
    code = serializers.CharField(help_text="Why it was skipped: `backup_in_progress`, `volume_not_available`.")
    reason = serializers.CharField()
    detail = serializers.JSONField()


class BackupsTriggeredSerializer(serializers.Serializer):
    """`POST /backups` with `{"all": true}`: the backups queued and the volumes skipped."""

    count = serializers.IntegerField()
    results = BackupSerializer(many=True)
    skipped = SkippedVolumeSerializer(many=True)


class SnapshotEntrySerializer(serializers.Serializer):
    """One name in a directory of a snapshot (the engine's `TreeEntry.public()`)."""

    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["file", "dir", "symlink", "other"])
    mode = serializers.IntegerField(help_text="Permission bits as a number (0o644 is 420).")
    mtime_ns = serializers.IntegerField(help_text="Modification time, nanoseconds since the epoch.")
    uid = serializers.IntegerField()
    gid = serializers.IntegerField()
    size = serializers.IntegerField()
    target = serializers.CharField(allow_null=True, help_text="Symlinks only; null otherwise.")


class SnapshotListingSerializer(serializers.Serializer):
    """`GET /backups/{id}/files?path=/dir`: one directory of the backup's snapshot."""

    backup = serializers.UUIDField()
    path = serializers.CharField()
    entries = SnapshotEntrySerializer(many=True)
