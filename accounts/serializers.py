"""JSON shapes of tokens and audit events. A token's secret appears only in the create answer."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import ApiToken, AuditEvent
from accounts.roles import Role
from accounts.scopes import MAX_LABEL_SELECTOR_LENGTH, MAX_SCOPE_VOLUMES, Verb, token_scope
from accounts.tokens import MAX_EXPIRY_DAYS


class TokenScopeSerializer(serializers.Serializer):
    """A token's scope; every part optional, an empty part limits nothing (accounts.scopes)."""

    volumes = serializers.ListField(child=serializers.CharField(max_length=100, trim_whitespace=False),
                                    required=False, max_length=MAX_SCOPE_VOLUMES,
                                    help_text="Volume names, or name prefixes ending in '*' (db-*).")
    label_selector = serializers.CharField(required=False, allow_blank=True, max_length=MAX_LABEL_SELECTOR_LENGTH,
                                           trim_whitespace=False,
                                           help_text="key=value,key2=value2, as the volume list's filter.")
    verbs = serializers.ListField(child=serializers.CharField(max_length=40), required=False,
                                  help_text=f"A subset of {', '.join(Verb.values)}.")


class ApiTokenSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()
    scope = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "role", "scope", "prefix", "state", "source", "created_by", "created_at",
                  "expires_at", "last_used_at", "revoked_at"]
        read_only_fields = fields

    def get_state(self, token: ApiToken) -> str:
        return token.state()

    @extend_schema_field(TokenScopeSerializer)
    def get_scope(self, token: ApiToken) -> dict:
        return token_scope(token).as_dict()


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$", max_length=100,
        error_messages={"invalid": "Use 1-100 letters, digits, '.', '_', '@' or '-', starting with a letter or digit."},
    )
    role = serializers.ChoiceField(choices=Role.choices)
    expires_in_days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_EXPIRY_DAYS)
    scope = TokenScopeSerializer(required=False)

    def validate_name(self, name: str) -> str:
        if name.startswith("env-"):
            raise serializers.ValidationError("Names starting with 'env-' are reserved for environment tokens.")
        return name


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "actor_type", "role", "token_scope", "method", "path", "action",
                  "target_type", "target_id", "status_code", "result", "remote_addr", "request_id"]
        read_only_fields = fields


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    """The create answer: the token row plus `token`, the secret, shown this once."""

    token = serializers.CharField(read_only=True)

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields
