"""`manage.py init_repository`: open the backup repository, creating it if there is none.

Run once at start, after `migrate` and before the workers (`make run`, the compose
`migrate` service, the systemd units do), so that no backup job has to create the
repository. Idempotent and safe from several hosts at once: one creates it, the others open
it. Prints one line; exits 1 with one line on stderr when the repository cannot be opened
(wrong `REPOSITORY_KEY`, unreachable storage) or when the catalog has completed backups but
the configured location holds no repository (`--force` creates one anyway).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.engine.errors import EngineError
from backups.storage import initialise_repository


class Command(BaseCommand):
    help = "Open the backup repository, creating it when there is none (run once at start)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true",
                            help="Create a repository even though the catalog has completed "
                                 "backups (the old repository is gone for good).")

    def handle(self, *args, force: bool = False, **options):
        try:
            location, created = initialise_repository(force=force)
        except EngineError as error:
            raise CommandError(f"backup repository: {error.message}") from None
        state = "initialised a new" if created else "opened the existing"
        self.stdout.write(f"backup repository: {state} repository at {location}")
