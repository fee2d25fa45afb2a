"""Serializer of the policy resource: validates cron (croniter + Celery), time zone, retention,
and the RPO given as `rpo_minutes` or `rpo_hours` (storage_platform/rpo.py).

Validation answers 400 `validation_error` naming the field, never a 500.
"""

from __future__ import annotations

import math

from rest_framework import serializers

from backups.engine.errors import InvalidRetentionPolicy, ObjectLockUnsupported
from backups.engine.retention import RULES as RETENTION_RULES
from backups.engine.retention import RetentionPolicy
from backups.models import DEFAULT_REPLICATION_SCHEDULE, DEFAULT_SCHEDULE, Policy
from backups.scheduling import clock, cron
from storage_platform.rpo import BOTH_GIVEN_MESSAGE, MAX_RPO_HOURS, MINUTES_PER_HOUR, same_rpo
from storage_platform.rpo_fields import RpoHoursField

RETENTION_KEYS = RETENTION_RULES


def validate_retention(value) -> dict:
    """Check a retention dict with the engine's own parser (`RetentionPolicy.from_dict`), the
    one definition of the rules prune applies; refuse a rule that keeps nothing."""
    if not isinstance(value, dict):
        raise serializers.ValidationError("Retention must be an object such as {\"keep_daily\": 7}.")
    unknown = sorted(set(value) - set(RETENTION_KEYS))
    if unknown:
        raise serializers.ValidationError(
            f"Unknown retention key(s) {', '.join(unknown)}; use {', '.join(RETENTION_KEYS)}."
        )
    try:
        policy = RetentionPolicy.from_dict(value)
    except InvalidRetentionPolicy as error:
        raise serializers.ValidationError(error.message) from None
    if policy.empty:
        # An empty rule would let prune forget every snapshot of every volume of the policy.
        raise serializers.ValidationError("Retention must keep something (e.g. keep_last >= 1).")
    return value


class PolicySerializer(serializers.ModelSerializer):
    schedule = serializers.CharField(max_length=128, required=False, default=DEFAULT_SCHEDULE,
                                     help_text="Cron (minute hour day month weekday) in `timezone`.")
    timezone = serializers.CharField(max_length=64, required=False, default="UTC",
                                     help_text="IANA time zone name, e.g. Europe/Berlin.")
    verify_schedule = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                            help_text="Cron for verify jobs; empty: never.")
    prune_schedule = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                           help_text="Cron for prune (retention) jobs; empty: never.")
    drill_schedule = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                           help_text="Cron for restore drills (the newest backup of one volume of "
                                                     "the policy, chosen at random); empty: never.")
    replication_target = serializers.CharField(
        max_length=63, required=False, allow_blank=True,
        help_text="A replication target configured by the operator (GET /api/v1/replication-targets); "
                  "empty: no replication.")
    replication_schedule = serializers.CharField(
        max_length=128, required=False, allow_blank=True,
        help_text=f"Cron for replicate jobs; empty: only on request. Naming a target without a schedule "
                  f"sets {DEFAULT_REPLICATION_SCHEDULE!r} (hourly).")
    rpo_hours = RpoHoursField(required=False, help_text="rpo_minutes in hours; in a request, whole hours "
                                                         "instead of rpo_minutes.")
    volume_count = serializers.SerializerMethodField()
    next_run = serializers.SerializerMethodField(help_text="Next scheduled backup (UTC), null when disabled.")

    class Meta:
        model = Policy
        fields = [
            "id", "name", "description", "enabled", "schedule", "timezone", "retention", "keep_good", "rpo_minutes",
            "rpo_hours", "verify_schedule", "verify_percent", "prune_schedule", "drill_schedule", "is_default",
            "replication_target", "replication_schedule", "lock_mode", "lock_days", "volume_count", "next_run",
            "created_at", "updated_at",
        ]
        read_only_fields = ["id", "is_default", "created_at", "updated_at"]

    def validate_schedule(self, value: str) -> str:
        return _cron_field(value)

    def validate_verify_schedule(self, value: str) -> str:
        return _cron_field(value) if value.strip() else ""

    def validate_prune_schedule(self, value: str) -> str:
        return _cron_field(value) if value.strip() else ""

    def validate_drill_schedule(self, value: str) -> str:
        return _cron_field(value) if value.strip() else ""

    def validate_replication_schedule(self, value: str) -> str:
        return _cron_field(value) if value.strip() else ""

    def validate_replication_target(self, value: str) -> str:
        from backups.replication_targets import get_target

        value = value.strip()
        if value:
            get_target(value)  # 400 unknown_replication_target: targets are configured, not created here
        return value

    def validate_timezone(self, value: str) -> str:
        try:
            return cron.validate_timezone(value)
        except cron.InvalidSchedule as error:
            raise serializers.ValidationError(str(error)) from None

    def validate_retention(self, value):
        return validate_retention(value)

    def validate(self, attrs):
        _default_replication_schedule(attrs, self.instance)
        attrs = self._validate_rpo(attrs)
        validate_object_lock(attrs, self.instance)
        return attrs

    def _validate_rpo(self, attrs):
        """One RPO: `rpo_hours` (whole hours) becomes `rpo_minutes`; both only when they agree."""
        if "rpo_hours" not in attrs:
            return attrs
        hours = attrs.pop("rpo_hours")
        if "rpo_minutes" in attrs:
            if not same_rpo(attrs["rpo_minutes"], hours):
                raise serializers.ValidationError({"rpo_minutes": [BOTH_GIVEN_MESSAGE]})
            return attrs
        sent = self.initial_data.get("rpo_hours") if hasattr(self.initial_data, "get") else None
        if isinstance(sent, bool) or not math.isfinite(hours) or hours != int(hours) or not 1 <= hours <= MAX_RPO_HOURS:
            raise serializers.ValidationError(
                {"rpo_hours": [f"Must be a whole number of hours from 1 to {MAX_RPO_HOURS}; use rpo_minutes "
                               "for less than an hour."]})
        attrs["rpo_minutes"] = int(hours) * MINUTES_PER_HOUR
        return attrs

    def get_volume_count(self, policy: Policy) -> int:
        count = getattr(policy, "volume_total", None)
        if count is None:
            count = policy.volumes.count()
        if policy.is_default:
            from volumes.models import Volume

            count += Volume.objects.filter(policy__isnull=True).count()
        return count

    def get_next_run(self, policy: Policy) -> str | None:
        if not policy.enabled:
            return None
        try:
            return cron.next_run(cron.parse(policy.schedule, policy.timezone), clock.now()).isoformat()
        except cron.InvalidSchedule:
            return None


def validate_object_lock(attrs: dict, instance: Policy | None) -> None:
    """`lock_mode` and `lock_days` go together (both set or both off), and a lock is accepted
    only when the backups storage can hold locked objects (S3 with Object Lock on the bucket):
    otherwise every backup of the policy would fail later instead of this request now."""
    mode = attrs.get("lock_mode", instance.lock_mode if instance else "")
    days = attrs.get("lock_days", instance.lock_days if instance else 0)
    if bool(mode) != bool(days):
        field = "lock_days" if mode else "lock_mode"
        raise serializers.ValidationError({field: [
            "lock_mode and lock_days go together: give both (e.g. governance and 30) or neither "
            "(\"\" and 0)."]})
    if not mode or ("lock_mode" not in attrs and "lock_days" not in attrs):
        return
    from backups.storage import check_object_lock

    try:
        check_object_lock()
    except ObjectLockUnsupported as error:
        raise serializers.ValidationError({"lock_mode": [error.message]}) from None


def _default_replication_schedule(attrs: dict, policy: Policy | None) -> None:
    """A target named now, with no schedule given and none before, gets the hourly default."""
    if "replication_schedule" in attrs or not attrs.get("replication_target"):
        return
    if policy is None or not policy.replication_schedule:
        attrs["replication_schedule"] = DEFAULT_REPLICATION_SCHEDULE


def _cron_field(value: str) -> str:
    try:
        return cron.normalize_expression(value)
    except cron.InvalidSchedule as error:
        raise serializers.ValidationError(str(error)) from None
