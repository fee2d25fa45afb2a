"""Django admin for volumes: list with status and usage, filters, search; create, edit and
delete go through `volumes.services` so the pool folder is made and removed like in the API.

Other apps add actions with `register_volume_action(func)` (the backups app registers
"back up now" and "restore to a new volume" from backups/admin.py), so this module does
not import them.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat

from storage_platform.errors import PlatformError
from volumes import services
from volumes.models import Volume
from volumes.validation import VolumeValidationError, clean_volume_fields


class VolumeAdminForm(forms.ModelForm):
    class Meta:
        model = Volume
        fields = ["name", "size_gb", "pool", "node", "labels", "policy", "rpo_hours_override"]

    def clean(self):
        cleaned = super().clean()
        fields = {"size_gb": cleaned.get("size_gb"), "labels": cleaned.get("labels") or {},
                  "rpo_hours": cleaned.get("rpo_hours_override")}
        if self.instance._state.adding:
            fields.update(name=cleaned.get("name"), pool=cleaned.get("pool") or "default",
                          node=cleaned.get("node") or "")
        fields = {key: value for key, value in fields.items() if value is not None or key == "rpo_hours"}
        try:
            clean_volume_fields(fields, partial=not self.instance._state.adding)
        except VolumeValidationError as error:
            for field, problems in error.detail.items():
                target = "rpo_hours_override" if field == "rpo_hours" else field
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
            model_admin.message_user(request, f"{volume.name}: {error.message}", messages.ERROR)
    model_admin.message_user(request, "Usage measured.", messages.SUCCESS)


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    form = VolumeAdminForm
    list_display = ["name", "status", "size_gb", "usage", "pool", "node", "policy", "effective_rpo_hours",
                    "created_at"]
    list_filter = ["status", "pool", "node", "policy"]
    list_select_related = ["policy"]
    search_fields = ["name", "path"]
    ordering = ["name"]
    readonly_fields = ["id", "status", "status_message", "path", "used_bytes", "created_at", "updated_at"]
    actions: list = [refresh_usage_action]

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None:
            fields += ["name", "pool", "node"]  # identity and placement do not change
        return fields

    @admin.display(description="used")
    def usage(self, volume: Volume) -> str:
        percent = 100 * volume.used_bytes / volume.quota_bytes if volume.quota_bytes else 0
        return f"{filesizeformat(volume.used_bytes)} ({percent:.0f} %)"

    @admin.display(description="RPO (h)")
    def effective_rpo_hours(self, volume: Volume) -> int:
        return volume.rpo_hours

    def save_model(self, request, obj, form, change):
        actor = f"user:{request.user.get_username()}"
        data = form.cleaned_data
        fields = {"size_gb": data["size_gb"], "labels": data.get("labels") or {},
                  "rpo_hours": data.get("rpo_hours_override"),
                  "policy": data["policy"].pk if data.get("policy") else None}
        if not change:
            fields.update(name=data["name"], pool=data.get("pool") or "default", node=data.get("node") or "")
            created = services.create_volume(fields, actor=actor)
            obj.id = created.id
            obj.refresh_from_db()
        else:
            # The form already copied the new values onto `obj`; the service compares against
            # the stored row (quota below usage, what changed), so give it a fresh one.
            services.update_volume(Volume.objects.get(pk=obj.pk), fields, actor=actor)

    def delete_model(self, request, obj):
        try:
            services.delete_volume(obj, actor=f"user:{request.user.get_username()}")
        except PlatformError as error:
            self.message_user(request, f"{obj.name}: {error.message}", messages.ERROR)

    def delete_queryset(self, request, queryset):
        for volume in queryset:
            self.delete_model(request, volume)
