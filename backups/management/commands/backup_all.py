"""`manage.py backup_all`: back up every volume now, for sites that schedule with system cron.

    manage.py backup_all                 # queue every available volume, wait, report
    manage.py backup_all --no-wait       # queue and exit (workers do the work)
    manage.py backup_all --volume db-1 --volume web --timeout 1800
    manage.py backup_all --policy nightly  # the volumes of one policy (cron per policy)

One line per volume on stdout (`volume=<name> status=<status> ...`), then a summary line.
Exit status: 0 when every backup completed (or was already running: skipped, not failed),
1 when any failed or was cancelled, 2 when the timeout passed with backups still running
(they keep running; the command only stops waiting), 3 when a named volume or policy does
not exist.
Workers must be running: this command queues jobs and watches them, like the API does.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from backups.management.output import key_value_line
from backups.volume_access import VolumeNotFound
from backups.models import Backup, BackupStatus, BackupTrigger

EXIT_FAILED, EXIT_TIMEOUT, EXIT_UNKNOWN_VOLUME = 1, 2, 3
TERMINAL = (BackupStatus.COMPLETED, BackupStatus.FAILED, BackupStatus.CANCELLED)


class Command(BaseCommand):
    help = "Back up every volume (or --volume ones) now; wait and exit non-zero if any failed."

    def add_arguments(self, parser):
        parser.add_argument("--volume", action="append", default=[], metavar="NAME_OR_ID",
                            help="Only this volume (repeatable). Default: every available volume.")
        parser.add_argument("--policy", metavar="NAME",
                            help="Only the available volumes of this policy (the default policy includes "
                                 "volumes without one).")
        parser.add_argument("--no-wait", action="store_true", help="Queue the backups and exit at once.")
        parser.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                            help="Stop waiting after this long (exit 2). Default 3600.")
        parser.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS",
                            help="How often to read the backups' status while waiting. Default 2.")
        parser.add_argument("--trigger", choices=BackupTrigger.values, default=BackupTrigger.SCHEDULE,
                            help="Recorded trigger of the backups. Default: schedule (cron).")

    def handle(self, *args, volume, policy, no_wait, timeout, poll_interval, trigger, **options):
        from backups import services

        if timeout <= 0 or poll_interval <= 0:
            raise CommandError("--timeout and --poll-interval must be positive.")
        volumes = None
        if volume and policy:
            raise CommandError("Give --volume or --policy, not both.")
        if policy:
            volumes = self._volumes_of_policy(policy)
        if volume:
            try:
                volumes = [services.find_volume(reference) for reference in volume]
            except VolumeNotFound as error:
                raise CommandError(error.message, returncode=EXIT_UNKNOWN_VOLUME) from None
        queued, skipped = services.trigger_backup_all(trigger=trigger, actor="manage.py backup_all", volumes=volumes)
        for entry in skipped:
            self._line(entry["volume_name"], "skipped", reason=entry["reason"])
        if no_wait:
            for backup in queued:
                self._line(backup.volume_name, "queued", backup=backup.pk, job=backup.job_id)
            self._summary(queued=len(queued), skipped=len(skipped))
            return
        outcome = self._wait(queued, timeout, poll_interval)
        counts = {status: len(backups) for status, backups in outcome.items()}
        self._summary(skipped=len(skipped), **counts)
        if counts.get("failed") or counts.get("cancelled"):
            raise CommandError(f"{counts.get('failed', 0)} backup(s) failed, {counts.get('cancelled', 0)} cancelled.",
                               returncode=EXIT_FAILED)
        if counts.get("unfinished"):
            raise CommandError(f"{counts['unfinished']} backup(s) still running after {timeout:.0f} s.",
                               returncode=EXIT_TIMEOUT)

    @staticmethod
    def _volumes_of_policy(name: str):
        from backups.models import Policy
        from backups.scheduling.fanout import volumes_of
        from volumes.models import VolumeStatus

        found = Policy.objects.filter(name=name).first()
        if found is None:
            raise CommandError(f"Policy {name!r} does not exist.", returncode=EXIT_UNKNOWN_VOLUME)
        return list(volumes_of(found).filter(status=VolumeStatus.AVAILABLE).order_by("name"))

    def _wait(self, queued: list[Backup], timeout: float, poll_interval: float) -> dict[str, list[Backup]]:
        """Report each backup as it finishes; return them grouped by final status."""
        pending = {backup.pk: backup for backup in queued}
        outcome: dict[str, list[Backup]] = {"completed": [], "failed": [], "cancelled": [], "unfinished": []}
        deadline = time.monotonic() + timeout
        while pending:
            for backup in Backup.objects.filter(pk__in=list(pending), status__in=TERMINAL):
                del pending[backup.pk]
                outcome[backup.status].append(backup)
                self._report(backup)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(min(poll_interval, max(deadline - time.monotonic(), 0.01)))
        for backup in Backup.objects.filter(pk__in=list(pending)):
            outcome["unfinished"].append(backup)
            self._line(backup.volume_name, "timeout", backup=backup.pk, job=backup.job_id, last_status=backup.status)
        return outcome

    def _report(self, backup: Backup) -> None:
        if backup.status == BackupStatus.COMPLETED:
            stats = backup.stats or {}
            self._line(backup.volume_name, "completed", backup=backup.pk, snapshot=backup.snapshot_id,
                       files=stats.get("files"), bytes_new=stats.get("bytes_new"),
                       seconds=stats.get("duration_seconds"))
        else:
            self._line(backup.volume_name, backup.status, backup=backup.pk, job=backup.job_id,
                       error=(backup.error or "").replace("\n", " ")[:300])

    def _line(self, volume_name: str, status: str, **fields) -> None:
        self.stdout.write(key_value_line({"volume": volume_name, "status": status, **fields}))

    def _summary(self, **counts) -> None:
        self.stdout.write("backup_all: " + " ".join(f"{key}={value}" for key, value in counts.items()))
