"""Django admin for API tokens (create shows the secret once, revoke action) and the audit
log (read-only: an audit log an operator can edit proves nothing)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from accounts.audit import record_admin_action
from accounts.models import ApiToken, AuditEvent, TokenSource
from accounts.scopes import InvalidScope, Verb, build_scope, token_scope
from accounts.tokens import display_prefix, generate_token, hash_token


class ApiTokenAddForm(forms.ModelForm):
    # The scope, validated by the API's rules (accounts.scopes.build_scope).
    scope_volumes_text = forms.CharField(
        label="Scope: volumes", required=False,
        help_text="Comma-separated volume names or prefixes ending in '*' (db-*); empty: any volume.")
    scope_label_selector = forms.CharField(
        label="Scope: label selector", required=False, help_text="key=value,key2=value2; empty: any labels.")
    scope_verbs = forms.MultipleChoiceField(
        label="Scope: verbs", required=False, choices=Verb.choices, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every verb the role allows.")

    class Meta:
        model = ApiToken
        fields = ["name", "role", "expires_at"]

    def clean_name(self):
        name = self.cleaned_data["name"]
        if name.startswith("env-"):
            raise forms.ValidationError("Names starting with 'env-' are reserved for environment tokens.")
        return name

    def clean(self):
        cleaned = super().clean()
        if "role" not in cleaned:
            return cleaned
        volumes = [entry.strip() for entry in cleaned.get("scope_volumes_text", "").split(",") if entry.strip()]
        try:
            self.scope = build_scope(cleaned["role"], volumes=volumes,
                                     label_selector=cleaned.get("scope_label_selector", ""),
                                     verbs=cleaned.get("scope_verbs") or [])
        except InvalidScope as error:
            raise forms.ValidationError(error.message) from None
        return cleaned


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "role", "scope_summary", "prefix", "token_state", "source", "created_at", "expires_at",
                    "last_used_at", "revoked_at"]
    list_filter = ["role", "source"]
    search_fields = ["name", "prefix", "created_by"]
    actions = ["revoke_tokens"]
    readonly_fields = ["name", "role", "scope_summary", "prefix", "source", "created_by", "created_at",
                       "last_used_at", "revoked_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # Adding: name, role and expiry are chosen; afterwards only the expiry may change.
        return [] if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "role", "scope_volumes_text", "scope_label_selector", "scope_verbs", "expires_at"]
        return ["name", "role", "scope_summary", "prefix", "source", "created_by", "created_at", "expires_at",
                "last_used_at", "revoked_at"]

    @admin.display(description="scope")
    def scope_summary(self, token: ApiToken) -> str:
        # A scope is fixed at creation: changing it would silently widen or narrow a token
        # that is already handed out; make a new token instead.
        return token_scope(token).summary() or "unscoped"

    @admin.display(description="state")
    def token_state(self, token: ApiToken) -> str:
        return token.state()

    def save_model(self, request, obj, form, change):
        if not change:
            plaintext = generate_token()
            obj.secret_hash = hash_token(plaintext)
            obj.prefix = display_prefix(plaintext)
            obj.source = TokenSource.ADMIN
            obj.created_by = request.user.get_username()
            scope = form.scope
            obj.scope_volumes, obj.scope_label_selector, obj.scope_verbs = (
                list(scope.volumes), scope.label_selector, list(scope.verbs))
            super().save_model(request, obj, form, change)
            record_admin_action(request, action="create_token", target_type="tokens", target_id=obj.pk, status_code=201)
            # Shown once: the message is consumed by the next page and the token is not stored.
            messages.warning(request, f"Token for '{obj.name}': {plaintext} — copy it now, it will not be shown again.")
            return
        super().save_model(request, obj, form, change)
        record_admin_action(request, action="change_token", target_type="tokens", target_id=obj.pk)

    def has_delete_permission(self, request, obj=None):
        # Revoke instead: the row keeps audit events attributable.
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request, queryset):
        now = timezone.now()
        revoked = 0
        for token in queryset:
            if token.revoke(now):
                revoked += 1
            record_admin_action(request, action="revoke_token", target_type="tokens", target_id=token.pk, status_code=204)
        self.message_user(request, f"Revoked {revoked} token(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "token_scope", "method", "action", "target_type", "target_id",
                    "status_code", "result"]
    list_filter = ["result", "method", "actor_type", "target_type"]
    search_fields = ["actor", "target_id", "request_id", "path"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
