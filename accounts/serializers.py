"""JSON shapes of tokens and audit events. A token's secret appears only in the create answer."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import ApiToken, AuditEvent
from accounts.roles import Role
from accounts.tokens import MAX_EXPIRY_DAYS


class ApiTokenSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "role", "prefix", "state", "source", "created_by", "created_at",
                  "expires_at", "last_used_at", "revoked_at"]
        read_only_fields = fields

    def get_state(self, token: ApiToken) -> str:
        return token.state()


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$", max_length=100,
        error_messages={"invalid": "Use 1-100 letters, digits, '.', '_', '@' or '-', starting with a letter or digit."},
    )
    role = serializers.ChoiceField(choices=Role.choices)
    expires_in_days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_EXPIRY_DAYS)

    def validate_name(self, name: str) -> str:
        if name.startswith("env-"):
            raise serializers.ValidationError("Names starting with 'env-' are reserved for environment tokens.")
        return name


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "actor_type", "role", "method", "path", "action",
                  "target_type", "target_id", "status_code", "result", "remote_addr", "request_id"]
        read_only_fields = fields


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    """The create answer: the token row plus `token`, the secret, shown this once."""

    token = serializers.CharField(read_only=True)

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields
