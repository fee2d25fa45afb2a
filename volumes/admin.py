"""Django admin for volumes: list with status and usage, filters, search; create, edit and
delete go through `volumes.services` so the pool folder is made and removed like in the API.

Other apps add actions with `register_volume_action(func)` (the backups app registers
"back up now" and "restore to a new volume" from backups/admin.py), so this module does
not import them.

The list shows each volume's last backup (age and status) and its RPO status (`ok`, `late`,
`never`; the rule is `monitoring.protection`'s, the same as the overview's), and filters by
it. A volume's page lists its recent backups and jobs. Creating, changing and deleting a
volume here is audited like the API's calls.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat, timesince
from django.utils import timezone
from django.utils.html import format_html

from accounts.audit import record_admin_action
from monitoring import protection

from storage_platform.errors import PlatformError
from volumes import services
from volumes.models import Volume
from volumes.validation import VolumeValidationError, clean_volume_fields


class VolumeAdminForm(forms.ModelForm):
    """Validates with the API's rules. The RPO override is edited in minutes;
    `rpo_hours_override`, when filled in, sets it in whole hours instead."""

    rpo_hours_override = forms.IntegerField(
        required=False, min_value=1, label="RPO override (hours)",
        help_text="Instead of minutes: the override in whole hours. Leave empty to use minutes.")

    class Meta:
        model = Volume
        fields = ["name", "size_gb", "pool", "node", "labels", "policy", "rpo_minutes_override",
                  "rpo_hours_override"]
        labels = {"rpo_minutes_override": "RPO override (minutes)"}

    def clean(self):
        cleaned = super().clean()
        minutes, hours = cleaned.get("rpo_minutes_override"), cleaned.get("rpo_hours_override")
        if hours is not None and "rpo_minutes_override" not in self.changed_data:
            # The minutes shown were left as they were: the hours typed in are the new override.
            minutes = None
        rpo = {"rpo_minutes": minutes} if hours is None or minutes is not None else {"rpo_hours": hours}
        if hours is not None and minutes is not None:
            rpo["rpo_hours"] = hours
        fields = {"size_gb": cleaned.get("size_gb"), "labels": cleaned.get("labels") or {}}
        if self.instance._state.adding:
            fields.update(name=cleaned.get("name"), pool=cleaned.get("pool") or "default",
                          node=cleaned.get("node") or "")
        fields = {key: value for key, value in fields.items() if value is not None}
        try:
            clean = clean_volume_fields({**fields, **rpo}, partial=not self.instance._state.adding)
            cleaned["rpo_minutes_override"] = clean["rpo_minutes"]
        except VolumeValidationError as error:
            for field, problems in error.detail.items():
                target = {"rpo_minutes": "rpo_minutes_override", "rpo_hours": "rpo_hours_override"}.get(field, field)
                self.add_error(target if target in self.fields else None, problems)
        size_gb = cleaned.get("size_gb")
        if not self.instance._state.adding and size_gb and size_gb * 1024**3 < self.instance.used_bytes:
            self.add_error("size_gb", f"The volume holds {self.instance.used_bytes} bytes; this is too small.")
        return cleaned


def register_volume_action(action_function) -> None:
    """Add an admin action to the volume list (call at import time of another app's admin)."""
    if action_function not in VolumeAdmin.actions:
        VolumeAdmin.actions.append(action_function)


@admin.action(description="Measure used bytes of the selected volumes")
def refresh_usage_action(model_admin, request, queryset):
    for volume in queryset:
        try:
            services.refresh_usage(volume)
        except PlatformError as error:
            record_admin_action(request, action="refresh_usage", target_type="volumes", target_id=volume.pk,
                                status_code=error.http_status)
            model_admin.message_user(request, f"{volume.name}: {error.message}", messages.ERROR)
        else:
            record_admin_action(request, action="refresh_usage", target_type="volumes", target_id=volume.pk)
    model_admin.message_user(request, "Usage measured.", messages.SUCCESS)


class RpoStatusFilter(admin.SimpleListFilter):
    title = "RPO status"
    parameter_name = "rpo"

    def lookups(self, request, model_admin):
        return [(protection.RpoStatus.OK, "ok"), (protection.RpoStatus.LATE, "late"),
                (protection.RpoStatus.NEVER, "never backed up")]

    def queryset(self, request, queryset):
        if self.value() in protection.RpoStatus.values:
            return protection.filter_by_status(queryset, self.value(), timezone.now())
        return queryset


RECENT_ROWS = 10


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    form = VolumeAdminForm
    list_display = ["name", "status", "rpo_status", "last_backup", "size_gb", "usage", "pool", "node", "policy",
                    "effective_rpo", "created_at"]
    list_filter = [RpoStatusFilter, "status", "pool", "node", "policy"]
    list_select_related = ["policy"]
    search_fields = ["name", "path"]
    ordering = ["name"]
    readonly_fields = ["id", "status", "status_message", "path", "used_bytes", "created_at", "updated_at"]
    actions: list = [refresh_usage_action]

    def get_queryset(self, request):
        return protection.with_protection(super().get_queryset(request))

    @admin.display(description="RPO status")
    def rpo_status(self, volume: Volume) -> str:
        status = protection.rpo_status(volume.last_success_at, volume.effective_rpo_minutes, timezone.now())
        return format_html('<span class="rpo rpo-{}" title="newest completed backup vs. an RPO of {}">{}</span>',
                           status, protection.describe_rpo(volume.effective_rpo_minutes), status)

    @admin.display(description="last backup", ordering="last_backup_at")
    def last_backup(self, volume: Volume) -> str:
        if volume.last_backup_at is None:
            return "never"
        return f"{timesince(volume.last_backup_at, depth=1)} ago, {volume.last_backup_status}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from backups.models import Backup, Job

        extra = {"recent_backups": Backup.objects.filter(volume_id=object_id).order_by("-created_at")[:RECENT_ROWS],
                 "recent_jobs": Job.objects.filter(volume_id=object_id).order_by("-created_at")[:RECENT_ROWS]}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None:
            fields += ["name", "pool", "node"]  # identity and placement do not change
        return fields

    @admin.display(description="used")
    def usage(self, volume: Volume) -> str:
        percent = 100 * volume.used_bytes / volume.quota_bytes if volume.quota_bytes else 0
        return f"{filesizeformat(volume.used_bytes)} ({percent:.0f} %)"

    @admin.display(description="RPO", ordering="effective_rpo_minutes")
    def effective_rpo(self, volume: Volume) -> str:
        return protection.describe_rpo(volume.effective_rpo_minutes)

    def save_model(self, request, obj, form, change):
        actor = f"user:{request.user.get_username()}"
        data = form.cleaned_data
        fields = {"size_gb": data["size_gb"], "labels": data.get("labels") or {},
                  "rpo_minutes": data.get("rpo_minutes_override"),
                  "policy": data["policy"].pk if data.get("policy") else None}
        if not change:
            fields.update(name=data["name"], pool=data.get("pool") or "default", node=data.get("node") or "")
            created = services.create_volume(fields, actor=actor)
            obj.id = created.id
            obj.refresh_from_db()
            record_admin_action(request, action="create_volume", target_type="volumes", target_id=obj.pk,
                                status_code=201)
        else:
            # The form already copied the new values onto `obj`; the service compares against
            # the stored row (quota below usage, what changed), so give it a fresh one.
            services.update_volume(Volume.objects.get(pk=obj.pk), fields, actor=actor)
            record_admin_action(request, action="change_volume", target_type="volumes", target_id=obj.pk)

    def delete_model(self, request, obj):
        try:
            services.delete_volume(obj, actor=f"user:{request.user.get_username()}")
        except PlatformError as error:
            record_admin_action(request, action="delete_volume", target_type="volumes", target_id=obj.pk,
                                status_code=error.http_status)
            self.message_user(request, f"{obj.name}: {error.message}", messages.ERROR)
        else:
            record_admin_action(request, action="delete_volume", target_type="volumes", target_id=obj.pk,
                                status_code=204)

    def delete_queryset(self, request, queryset):
        for volume in queryset:
            self.delete_model(request, volume)
