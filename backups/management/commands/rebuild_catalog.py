"""`manage.py rebuild_catalog`: recreate volume and backup records from the backup repository.

For the day the database is lost (docs/runbook-database-lost.md). Run it with the API,
workers and beat stopped, after `migrate` on the new database:

    manage.py rebuild_catalog             # rebuild, print what it did
    manage.py rebuild_catalog --dry-run   # the same report, nothing written

Prints one line per volume (`volume=db-1 id=... result=created status=available
backups_created=3 backups_kept=0`), one per placeholder policy, folder without a volume and
unreadable manifest, then the summary line (`rebuild_catalog: volumes_created=2 ...`).
Idempotent: a second run creates nothing (`result=kept`). The repository and the volumes'
data are only read. Exit status: 0; 1 when some manifests could not be read (everything else
was rebuilt); 2 when the repository cannot be opened (nothing was written).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.engine.errors import EngineError
from backups.management.output import key_value_line

EXIT_PROBLEMS, EXIT_NO_REPOSITORY = 1, 2


class Command(BaseCommand):
    help = "Recreate volume and backup records from the backup repository (services stopped)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report what would be done; write nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        from backups.rebuild import rebuild_catalog
        from backups.storage import open_existing_repository

        try:
            repository = open_existing_repository()
        except EngineError as error:
            raise CommandError(f"backup repository: {error.message}", returncode=EXIT_NO_REPOSITORY) from None
        try:
            report = rebuild_catalog(repository, dry_run=dry_run)
        except EngineError as error:
            raise CommandError(f"backup repository: {error.message}; nothing was written",
                               returncode=EXIT_NO_REPOSITORY) from None
        finally:
            repository.close()
        for outcome in report.volumes:
            fields = {"id": outcome.volume_id, "result": outcome.result, "status": outcome.status,
                      "backups_created": outcome.backups_created, "backups_kept": outcome.backups_kept,
                      "reason": outcome.reason}
            self._line("volume", outcome.name, fields)
        for name in report.policies_created:
            self._line("policy", name, {"result": "placeholder", "enabled": "false"})
        for path in report.unknown_folders:
            self._line("folder", path, {"result": "no_volume"})
        for problem in report.problems:
            self.stderr.write(f"problem: {problem}")
        counts = " ".join(f"{key}={value}" for key, value in report.counts().items())
        self.stdout.write(f"rebuild_catalog{' (dry run, nothing written)' if dry_run else ''}: {counts}")
        if report.problems:
            raise CommandError(f"{len(report.problems)} snapshot manifest(s) could not be read; see above.",
                               returncode=EXIT_PROBLEMS)

    def _line(self, kind: str, name: str, fields: dict) -> None:
        self.stdout.write(key_value_line({kind: name, **fields}))
