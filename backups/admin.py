"""Django admin for backups, jobs and policies, plus the volume actions "back up now" and
"restore the latest backup to a new volume".

Every action goes through `backups.services`, exactly like the API: the same one-at-a-time
rule, the same jobs, the same Celery messages. Catalog rows are read-only here; the state
machine owns them.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from backups import selectors, services
from backups.models import Backup, BackupTrigger, Job, JobStatus, Policy
from backups.serializers import job_progress
from storage_platform.errors import PlatformError


def _actor(request) -> str:
    return f"user:{request.user.get_username()}"


def _report(model_admin, request, done: list[str], problems: list[str], verb: str) -> None:
    if done:
        model_admin.message_user(request, f"{verb}: {', '.join(done)}.", messages.SUCCESS)
    for problem in problems:
        model_admin.message_user(request, problem, messages.ERROR)


def restore_copy_name(name: str, now=None) -> str:
    """`<name>-restore-<YYYYmmddHHMMSS>`, cut to a 63-character DNS label."""
    suffix = f"-restore-{(now or timezone.now()):%Y%m%d%H%M%S}"
    return f"{name[:63 - len(suffix)].rstrip('-')}{suffix}"


# --- volume actions (registered on the volumes app's admin) --------------------------------
@admin.action(description="Back up now")
def back_up_now(model_admin, request, queryset):
    done, problems = [], []
    for volume in queryset:
        try:
            services.trigger_backup(volume, trigger=BackupTrigger.MANUAL, actor=_actor(request))
            done.append(volume.name)
        except PlatformError as error:
            problems.append(f"{volume.name}: {error.message}")
    _report(model_admin, request, done, problems, "Backups queued")


@admin.action(description="Restore the latest backup to a new volume")
def restore_latest_to_new_volume(model_admin, request, queryset):
    done, problems = [], []
    for volume in queryset:
        latest = selectors.newest_completed_backup(volume.pk)
        if latest is None:
            problems.append(f"{volume.name}: no completed backup to restore.")
            continue
        new_name = restore_copy_name(volume.name)
        try:
            services.start_restore(latest, new_volume_name=new_name, actor=_actor(request))
            done.append(f"{volume.name} → {new_name}")
        except PlatformError as error:
            problems.append(f"{volume.name}: {error.message}")
    _report(model_admin, request, done, problems, "Restores queued")


try:
    from volumes.admin import register_volume_action
except ImportError:  # the volumes admin is not installed: nothing to extend
    register_volume_action = None
if register_volume_action is not None:
    register_volume_action(back_up_now)
    register_volume_action(restore_latest_to_new_volume)


# --- backups -------------------------------------------------------------------------------
@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    list_display = ["id", "volume_name", "status", "trigger", "created_at", "completed_at", "size_read", "snapshot"]
    list_filter = ["status", "trigger", "created_at"]
    search_fields = ["volume_name", "snapshot_id", "=id"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Backup._meta.fields]
    actions = ["restore_to_new_volume", "verify_repository"]
    list_select_related = ["job"]

    def has_add_permission(self, request) -> bool:
        return False  # backups are made by jobs, not typed in

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    @admin.display(description="read")
    def size_read(self, backup: Backup) -> str:
        return filesizeformat((backup.stats or {}).get("bytes_read", 0))

    @admin.display(description="snapshot")
    def snapshot(self, backup: Backup) -> str:
        return backup.snapshot_id[:12]

    def delete_model(self, request, obj: Backup) -> None:
        try:
            services.delete_backup(obj, actor=_actor(request))
        except PlatformError as error:
            self.message_user(request, f"{obj}: {error.message}", messages.ERROR)

    def delete_queryset(self, request, queryset) -> None:
        for backup in queryset:
            self.delete_model(request, backup)

    @admin.action(description="Restore to a new volume")
    def restore_to_new_volume(self, request, queryset):
        done, problems = [], []
        for backup in queryset:
            new_name = restore_copy_name(backup.volume_name)
            try:
                services.start_restore(backup, new_volume_name=new_name, actor=_actor(request))
                done.append(f"{backup.volume_name} → {new_name}")
            except PlatformError as error:
                problems.append(f"{backup}: {error.message}")
        _report(self, request, done, problems, "Restores queued")

    @admin.action(description="Verify the repository (read 10 %% of the data)")
    def verify_repository(self, request, queryset):
        job = services.start_verify(read_data_percent=10, actor=_actor(request))
        self.message_user(request, f"Verify job {job.pk} queued.", messages.SUCCESS)


# --- jobs ----------------------------------------------------------------------------------
@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "progress", "attempts", "worker", "heartbeat_at", "created_at",
                    "finished_at", "error_code"]
    list_filter = ["kind", "status", "queue", "created_at"]
    search_fields = ["=id", "worker", "error", "created_by"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Job._meta.fields]
    actions = ["cancel_jobs"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # jobs are history; the state machine owns them

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        percent = job_progress(job)["percent"]
        return "–" if percent is None else f"{percent:.0f} %"

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request, queryset):
        done, problems = [], []
        for job in queryset.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]):
            try:
                services.cancel_job(job, actor=_actor(request))
                done.append(str(job.pk))
            except PlatformError as error:
                problems.append(f"{job}: {error.message}")
        _report(self, request, done, problems, "Cancel requested")


# --- policies ------------------------------------------------------------------------------
class PolicyAdminForm(forms.ModelForm):
    """Validates schedules, time zone and retention with the API's rules."""

    class Meta:
        model = Policy
        fields = ["name", "description", "enabled", "schedule", "timezone", "retention", "rpo_hours",
                  "verify_schedule", "verify_percent", "prune_schedule"]

    def clean(self):
        cleaned = super().clean()
        try:
            from backups.views.policy_serializers import PolicySerializer
        except ImportError:
            return cleaned
        data = {key: value for key, value in cleaned.items() if key in self.Meta.fields and value is not None}
        serializer = PolicySerializer(instance=self.instance if self.instance.pk else None, data=data,
                                      partial=bool(self.instance.pk))
        if not serializer.is_valid():
            for field, problems in serializer.errors.items():
                self.add_error(field if field in self.fields else None, [str(problem) for problem in problems])
        return cleaned


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    form = PolicyAdminForm
    list_display = ["name", "enabled", "schedule", "timezone", "rpo_hours", "verify_schedule", "prune_schedule",
                    "is_default"]
    list_filter = ["enabled", "is_default"]
    # Exactly one default policy exists (a database constraint); it is chosen by migration.
    readonly_fields = ["is_default"]
    search_fields = ["name", "description"]
    actions = ["prune_now", "prune_dry_run"]

    @admin.action(description="Apply retention and prune now")
    def prune_now(self, request, queryset):
        for policy in queryset:
            job = services.start_prune(policy=policy, actor=_actor(request))
            self.message_user(request, f"{policy.name}: prune job {job.pk} queued.", messages.SUCCESS)

    @admin.action(description="Prune dry run (list what would go)")
    def prune_dry_run(self, request, queryset):
        for policy in queryset:
            job = services.start_prune(policy=policy, dry_run=True, actor=_actor(request))
            self.message_user(request, f"{policy.name}: dry-run prune job {job.pk} queued.", messages.SUCCESS)
