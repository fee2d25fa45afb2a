"""Django admin for backups, jobs and policies, plus the volume actions "back up now" and
"restore the latest backup to a new volume", and the backup actions restore, verify and drill.

Every action goes through `backups.services`, exactly like the API: the same one-at-a-time
rule, the same jobs, the same Celery messages. Catalog rows are read-only here; the state
machine owns them. Every action writes an audit event with the staff user as actor
(`accounts.audit.record_admin_action`); actions that remove data or stop work (prune,
cancel) go through a confirmation page first, and a restore goes through a form that asks
for the new volume's name and, optionally, the paths to restore.

A job's page shows its progress and refreshes itself every 2 s while the job is active
(`console/static/console/poll.js` replaces the panel with `<job>/progress/`).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import F
from django.http import Http404, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.audit import record_admin_action
from backups import selectors, services
from backups.models import ACTIVE_JOB_STATUSES, Backup, BackupTrigger, Job, JobStatus, Policy
from backups.serializers import job_progress
from storage_platform.errors import PlatformError

VERIFY_READ_PERCENT = 10


def _actor(request) -> str:
    return f"user:{request.user.get_username()}"


def _report(model_admin, request, done: list, problems: list[str], verb: str) -> None:
    if done:
        model_admin.message_user(request, format_html("{}: {}.", verb, format_html_join(", ", "{}", ((item,) for item in done))),
                                 messages.SUCCESS)
    for problem in problems:
        model_admin.message_user(request, problem, messages.ERROR)


def job_link(job: Job, text: str | None = None) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:backups_job_change", args=[job.pk]),
                       text or f"{job.kind} job {str(job.pk)[:8]}")


def volume_link(volume_id, name: str) -> str:
    from volumes.models import Volume

    if volume_id and Volume.objects.filter(pk=volume_id).exists():
        return format_html('<a href="{}">{}</a>', reverse("admin:volumes_volume_change", args=[volume_id]), name)
    return format_html("{} <small>(deleted)</small>", name) if name else "–"


def restore_copy_name(name: str, now=None) -> str:
    """`<name>-restore-<YYYYmmddHHMMSS>`, cut to a 63-character DNS label."""
    suffix = f"-restore-{(now or timezone.now()):%Y%m%d%H%M%S}"
    return f"{name[:63 - len(suffix)].rstrip('-')}{suffix}"


def confirm_page(model_admin, request, queryset, *, action: str, title: str, question: str, items: list[str],
                 button: str):
    """An intermediate "are you sure?" page for an admin action (posts back with `post=yes`)."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title, "question": question, "items": items, "button": button,
        "queryset": queryset, "action": action, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "console/confirm_action.html", context)


def confirmed(request) -> bool:
    return request.POST.get("post") == "yes"


def audited_each(request, targets, *, action: str, target_type: str, start, describe) -> tuple[list, list[str]]:
    """Run `start(target)` for each target through the services, writing one audit event per
    target (202 when started, the error's status when refused). Returns (what `describe(target,
    result)` says of each started one, messages of the refused ones)."""
    done, problems = [], []
    for target in targets:
        try:
            result = start(target)
        except PlatformError as error:
            record_admin_action(request, action=action, target_type=target_type, target_id=target.pk,
                                status_code=error.http_status)
            problems.append(f"{target}: {error.message}")
            continue
        record_admin_action(request, action=action, target_type=target_type, target_id=target.pk, status_code=202)
        done.append(describe(target, result))
    return done, problems


# --- volume actions (registered on the volumes app's admin) --------------------------------
@admin.action(description="Back up now")
def back_up_now(model_admin, request, queryset):
    done, problems = audited_each(
        request, queryset, action="back_up_now", target_type="volumes",
        start=lambda volume: services.trigger_backup(volume, trigger=BackupTrigger.MANUAL, actor=_actor(request)),
        describe=lambda volume, backup: format_html("{} ({})", volume.name,
                                                    job_link(backup.job, f"backup job {str(backup.job_id)[:8]}")))
    _report(model_admin, request, done, problems, "Backups queued")


@admin.action(description="Restore the latest backup to a new volume…")
def restore_latest_to_new_volume(model_admin, request, queryset):
    if queryset.count() != 1:
        model_admin.message_user(request, "Choose exactly one volume to restore.", messages.WARNING)
        return None
    volume = queryset.first()
    latest = selectors.newest_completed_backup(volume.pk)
    if latest is None:
        model_admin.message_user(request, f"{volume.name}: no completed backup to restore.", messages.ERROR)
        return None
    return HttpResponseRedirect(reverse("admin:backups_backup_restore", args=[latest.pk]))


try:
    from volumes.admin import register_volume_action
except ImportError:  # the volumes admin is not installed: nothing to extend
    register_volume_action = None
if register_volume_action is not None:
    register_volume_action(back_up_now)
    register_volume_action(restore_latest_to_new_volume)


# --- the restore form ----------------------------------------------------------------------
class RestoreForm(forms.Form):
    new_volume_name = forms.CharField(max_length=63, label="New volume name",
                                      help_text="A DNS label: lower-case letters, digits and '-'.")
    paths = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
                            label="Paths (optional)",
                            help_text="One snapshot path per line (e.g. /etc/app.conf); empty restores everything.")
    size_gb = forms.IntegerField(required=False, min_value=1, label="Quota (GiB, optional)",
                                 help_text="Default: the source volume's quota.")

    def cleaned_paths(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data.get("paths", "").splitlines() if line.strip()]


# --- backups -------------------------------------------------------------------------------
@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    list_display = ["id", "volume_column", "status", "trigger", "created_at", "completed_at", "size_read", "snapshot",
                    "lock_column", "last_drill_column"]
    list_filter = ["status", "trigger", "created_at"]
    search_fields = ["volume_name", "snapshot_id", "=id"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Backup._meta.fields]
    actions = ["restore_to_new_volume", "verify_repository", "drill"]
    list_select_related = ["job", "last_drill"]

    def has_add_permission(self, request) -> bool:
        return False  # backups are made by jobs, not typed in

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    @admin.display(description="volume", ordering="volume_name")
    def volume_column(self, backup: Backup) -> str:
        return volume_link(backup.volume_id, backup.volume_name)

    @admin.display(description="read")
    def size_read(self, backup: Backup) -> str:
        return filesizeformat((backup.stats or {}).get("bytes_read", 0))

    @admin.display(description="snapshot")
    def snapshot(self, backup: Backup) -> str:
        return backup.snapshot_id[:12]

    @admin.display(description="object lock", ordering="locked_until")
    def lock_column(self, backup: Backup) -> str:
        if backup.locked_until is None:
            return "–"
        state = "locked until" if backup.locked_until > timezone.now() else "was locked until"
        return f"{state} {timezone.localtime(backup.locked_until):%Y-%m-%d %H:%M}"

    @admin.display(description="last drill")
    def last_drill_column(self, backup: Backup) -> str:
        drill = backup.last_drill
        if drill is None:
            return "–"
        when = f", {timezone.localtime(drill.finished_at):%Y-%m-%d %H:%M}" if drill.finished_at else ""
        return job_link(drill, f"{drill.status}{when}")

    def get_urls(self):
        custom = [path("<uuid:backup_id>/restore/", self.admin_site.admin_view(self.restore_view),
                       name="backups_backup_restore")]
        return custom + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        backup = Backup.objects.filter(pk=object_id).first() if object_id else None
        extra = {"restorable": backup is not None and selectors.is_completed(backup),
                 "volume_link": volume_link(backup.volume_id, backup.volume_name) if backup else ""}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def restore_view(self, request, backup_id):
        backup = Backup.objects.filter(pk=backup_id).first()
        if backup is None or not self.has_view_permission(request, backup):
            raise Http404("No such backup.")
        form = RestoreForm(request.POST or None, initial={"new_volume_name": restore_copy_name(backup.volume_name)})
        if request.method == "POST" and form.is_valid():
            name = form.cleaned_data["new_volume_name"].strip()
            try:
                job = services.start_restore(backup, new_volume_name=name, paths=form.cleaned_paths(),
                                             size_gb=form.cleaned_data.get("size_gb"), actor=_actor(request))
            except PlatformError as error:
                record_admin_action(request, action="restore", target_type="backups", target_id=backup.pk,
                                    status_code=error.http_status)
                form.add_error(None, error.message)
            else:
                record_admin_action(request, action="restore", target_type="backups", target_id=backup.pk,
                                    status_code=202)
                self.message_user(request, format_html("Restore of {} into the new volume {} queued: {}.",
                                                       backup.volume_name, name, job_link(job)), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:backups_job_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request), "title": f"Restore {backup.volume_name} to a new volume",
            "backup": backup, "form": form, "opts": self.model._meta, "original": backup,
            "volume_link": volume_link(backup.volume_id, backup.volume_name),
        }
        return TemplateResponse(request, "admin/backups/backup/restore.html", context)

    def delete_model(self, request, obj: Backup) -> None:
        try:
            services.delete_backup(obj, actor=_actor(request))
        except PlatformError as error:
            record_admin_action(request, action="delete_backup", target_type="backups", target_id=obj.pk,
                                status_code=error.http_status)
            self.message_user(request, f"{obj}: {error.message}", messages.ERROR)
        else:
            record_admin_action(request, action="delete_backup", target_type="backups", target_id=obj.pk,
                                status_code=204)

    def delete_queryset(self, request, queryset) -> None:
        for backup in queryset:
            self.delete_model(request, backup)

    @admin.action(description="Restore to a new volume…")
    def restore_to_new_volume(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one backup to restore.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:backups_backup_restore", args=[queryset.first().pk]))

    @admin.action(description=f"Verify (check the repository, read {VERIFY_READ_PERCENT} %% of the data)")
    def verify_repository(self, request, queryset):
        # One check covers the whole repository: several selected backups need one job.
        done, problems = audited_each(
            request, queryset[:1], action="verify", target_type="backups",
            start=lambda backup: services.start_verify(read_data_percent=VERIFY_READ_PERCENT, actor=_actor(request),
                                                       backup=backup),
            describe=lambda backup, job: job_link(job))
        _report(self, request, done, problems, "Verify queued")

    @admin.action(description="Drill: restore into a scratch folder and check every file")
    def drill(self, request, queryset):
        """A restore drill of each selected backup (`services.start_drill`): a worker restores
        the snapshot into a scratch folder, never a volume, checks every entry against the
        snapshot and removes the folder; the job's result is the report."""
        done, problems = audited_each(
            request, queryset, action="drill", target_type="backups",
            start=lambda backup: services.start_drill(backup, actor=_actor(request)),
            describe=lambda backup, job: job_link(job, f"drill of {backup.volume_name}"))
        _report(self, request, done, problems, "Drills queued")


# --- jobs ----------------------------------------------------------------------------------
@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "volume_column", "status", "progress", "attempts", "worker", "heartbeat_at",
                    "created_at", "finished_at", "error_code"]
    list_filter = ["kind", "status", "queue", "created_at"]
    search_fields = ["=id", "volume__name", "worker", "error", "created_by"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Job._meta.fields]
    actions = ["cancel_jobs"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # jobs are history; the state machine owns them

    def get_queryset(self, request):
        # The volume's name by a join (the row may be gone: jobs outlive their volume).
        return super().get_queryset(request).annotate(volume_name=F("volume__name"))

    @admin.display(description="volume", ordering="volume_name")
    def volume_column(self, job: Job) -> str:
        if job.volume_id is None:
            return "–"
        if job.volume_name is None:
            return format_html("<small>{} (deleted)</small>", str(job.volume_id)[:8])
        return format_html('<a href="{}">{}</a>', reverse("admin:volumes_volume_change", args=[job.volume_id]),
                           job.volume_name)

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        percent = job_progress(job)["percent"]
        return "–" if percent is None else f"{percent:.0f} %"

    def get_urls(self):
        custom = [
            path("running/", self.admin_site.admin_view(self.running_view), name="backups_job_running"),
            path("<uuid:job_id>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="backups_job_progress"),
        ]
        return custom + super().get_urls()

    def progress_context(self, job: Job) -> dict:
        from volumes.models import Volume

        volume = Volume.objects.filter(pk=job.volume_id).first() if job.volume_id else None
        return {"job": job, "progress": job_progress(job), "finished": job.status not in ACTIVE_JOB_STATUSES,
                "volume": volume, "backup": Backup.objects.filter(job=job).first(),
                "heartbeat_age": (timezone.now() - job.heartbeat_at) if job.heartbeat_at else None}

    def progress_view(self, request, job_id):
        job = Job.objects.filter(pk=job_id).first()
        if job is None or not self.has_view_permission(request, job):
            raise Http404("No such job.")
        return TemplateResponse(request, "admin/backups/job/progress_fragment.html", self.progress_context(job))

    def running_view(self, request):
        from console.overview import running_jobs

        if not self.has_view_permission(request):
            raise Http404("Not allowed.")
        running, queued = running_jobs()
        return TemplateResponse(request, "admin/backups/job/running_fragment.html",
                                {"running": running, "queued": queued})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = Job.objects.filter(pk=object_id).first() if object_id else None
        extra = self.progress_context(job) if job is not None else {}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @admin.action(description="Cancel the selected jobs…")
    def cancel_jobs(self, request, queryset):
        active = list(queryset.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).select_related("volume"))
        if not active:
            self.message_user(request, "None of the selected jobs is queued or running.", messages.WARNING)
            return None
        if not confirmed(request):
            items = [f"{job.kind} job {job.pk} ({job.status}"
                     + (f", volume {job.volume.name})" if job.volume_id and job.volume else ")") for job in active]
            return confirm_page(self, request, queryset, action="cancel_jobs", title="Cancel jobs",
                                question="Cancel these jobs? A running job stops at its next chunk; "
                                         "a cancelled backup is not retried.", items=items, button="Yes, cancel them")
        done, problems = audited_each(request, active, action="cancel_job", target_type="jobs",
                                      start=lambda job: services.cancel_job(job, actor=_actor(request)),
                                      describe=lambda job, _: job_link(job))
        _report(self, request, done, problems, "Cancel requested")
        return None


# --- policies ------------------------------------------------------------------------------
class PolicyAdminForm(forms.ModelForm):
    """Validates schedules, time zone, retention and the RPO with the API's rules. The RPO is
    edited in minutes; `rpo_hours`, when filled in, sets it in whole hours instead."""

    rpo_minutes = forms.IntegerField(required=False, min_value=1, label="RPO (minutes)",
                                     help_text=Policy._meta.get_field("rpo_minutes").help_text)
    rpo_hours = forms.IntegerField(required=False, min_value=1, label="RPO (hours)",
                                   help_text="Instead of minutes: the RPO in whole hours. Leave empty to use minutes.")
    lock_days = forms.IntegerField(required=False, min_value=0, label="Object Lock days",
                                   help_text=Policy._meta.get_field("lock_days").help_text)
    replication_target = forms.ChoiceField(required=False, help_text=Policy._meta.get_field("replication_target").help_text)

    class Meta:
        model = Policy
        fields = ["name", "description", "enabled", "schedule", "timezone", "retention", "keep_good", "rpo_minutes",
                  "rpo_hours", "verify_schedule", "verify_percent", "prune_schedule", "drill_schedule",
                  "replication_target", "replication_schedule", "lock_mode", "lock_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from backups.replication_targets import all_targets

        # Only the targets the operator configured (settings), named with where they are.
        self.fields["replication_target"].choices = [("", "none")] + [
            (name, f"{name} ({target.location})") for name, target in all_targets().items()]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("lock_days") is None:
            cleaned["lock_days"] = 0  # left empty: no lock
        try:
            from backups.views.policy_serializers import PolicySerializer
        except ImportError:
            return cleaned
        data = {key: value for key, value in cleaned.items() if key in self.Meta.fields and value is not None}
        if "rpo_hours" in data and "rpo_minutes" not in self.changed_data:
            # The minutes shown were left as they were: the hours typed in are the new RPO.
            data.pop("rpo_minutes", None)
        serializer = PolicySerializer(instance=self.instance if self.instance.pk else None, data=data,
                                      partial=bool(self.instance.pk))
        if not serializer.is_valid():
            for field, problems in serializer.errors.items():
                self.add_error(field if field in self.fields else None, [str(problem) for problem in problems])
        cleaned["rpo_minutes"] = serializer.validated_data.get("rpo_minutes") if serializer.is_valid() else None
        if cleaned["rpo_minutes"] is None:
            cleaned["rpo_minutes"] = self.instance.rpo_minutes
        return cleaned


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    form = PolicyAdminForm
    list_display = ["name", "enabled", "schedule", "timezone", "next_run", "last_run", "rpo_minutes", "verify_schedule",
                    "prune_schedule", "drill_schedule", "keep_good", "lock_column", "is_default"]
    list_filter = ["enabled", "is_default"]
    # Exactly one default policy exists (a database constraint); it is chosen by migration.
    readonly_fields = ["is_default", "next_run", "last_run"]
    search_fields = ["name", "description"]
    actions = ["prune_now", "prune_dry_run", "replicate_now"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        record_admin_action(request, action="change_policy" if change else "create_policy", target_type="policies",
                            target_id=obj.pk, status_code=200 if change else 201)

    def delete_model(self, request, obj):
        target_id = obj.pk
        super().delete_model(request, obj)
        record_admin_action(request, action="delete_policy", target_type="policies", target_id=target_id,
                            status_code=204)

    def delete_queryset(self, request, queryset):
        for policy in queryset:
            self.delete_model(request, policy)

    @admin.display(description="object lock")
    def lock_column(self, policy: Policy) -> str:
        return f"{policy.lock_mode}, {policy.lock_days} days" if policy.lock_mode else "–"

    @admin.display(description="next backup")
    def next_run(self, policy: Policy) -> str:
        from backups.scheduling import cron

        if not policy.enabled:
            return "disabled"
        try:
            following = cron.next_run(cron.parse(policy.schedule, policy.timezone), timezone.now())
        except cron.InvalidSchedule:
            return "invalid schedule"
        return f"{timezone.localtime(following):%Y-%m-%d %H:%M %Z}"

    @admin.display(description="last backup run")
    def last_run(self, policy: Policy) -> str:
        from django_celery_beat.models import PeriodicTask

        from backups.scheduling.sync import periodic_task_name

        if policy.pk is None:
            return "–"
        ran = (PeriodicTask.objects.filter(name=periodic_task_name(policy.pk, "backup"))
               .values_list("last_run_at", flat=True).first())
        return "never" if ran is None else f"{timezone.localtime(ran):%Y-%m-%d %H:%M %Z}"

    def _start_prunes(self, request, queryset, *, dry_run: bool) -> None:
        action = "prune_dry_run" if dry_run else "prune_now"
        done = []
        for policy in queryset:
            job = services.start_prune(policy=policy, dry_run=dry_run, actor=_actor(request))
            record_admin_action(request, action=action, target_type="policies", target_id=policy.pk, status_code=202)
            done.append(job_link(job, f"{'dry-run ' if dry_run else ''}prune of {policy.name}"))
        _report(self, request, done, [], "Dry runs queued (the job page lists what would be removed)"
                if dry_run else "Prunes queued")

    @admin.action(description="Apply retention and prune now…")
    def prune_now(self, request, queryset):
        if not confirmed(request):
            items = [f"{policy.name}: retention {policy.retention or '{}'} (and the newest {policy.keep_good} good "
                     f"snapshot(s) of each volume kept) on its {policy.volumes.count()} volume(s), then unreferenced "
                     "data removed" for policy in queryset]
            return confirm_page(self, request, queryset, action="prune_now", title="Prune now",
                                question="Forget the snapshots these policies no longer keep and delete the data "
                                         "no snapshot references? This cannot be undone; a dry run lists what "
                                         "would go.", items=items, button="Yes, prune")
        self._start_prunes(request, queryset, dry_run=False)
        return None

    @admin.action(description="Prune dry run (show what would be removed)")
    def prune_dry_run(self, request, queryset):
        self._start_prunes(request, queryset, dry_run=True)

    @admin.action(description="Replicate to the replication target now")
    def replicate_now(self, request, queryset):
        done, problems = audited_each(request, queryset, action="replicate_policy", target_type="policies",
                                      start=lambda policy: services.start_replicate(policy=policy, actor=_actor(request)),
                                      describe=lambda policy, job: job_link(job, f"replication of {policy.name}"))
        _report(self, request, done, problems, "Replications queued")


# The "Repository keys" page lives in its own module; importing it registers it.
from backups import admin_repository_keys  # noqa: E402,F401
