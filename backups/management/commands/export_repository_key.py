"""`manage.py export_repository_key PATH`: write the secret the latest key rotation stored
into a new file (mode 0600), for the `REPOSITORY_KEY_FILE` of every host and the offline copy.

After a rotation through the API or the admin, the platform opens the repository with that
stored secret (docs/security.md, "Repository keys"); the answer to the rotation showed it
once. This command is the way to get it again, on a host that already holds `SECRET_KEY` and
the database (a shell there is a full compromise anyway). It never prints the secret, and it
refuses to overwrite an existing file.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from backups.repository_secret import stored_secret


class Command(BaseCommand):
    help = "Write the repository secret stored by the latest key rotation into a new file (0600)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="The file to create (it must not exist).")

    def handle(self, *args, path: str, **options):
        stored = stored_secret()
        if stored is None:
            raise CommandError("no repository secret is stored (no rotation yet, or SECRET_KEY cannot unseal it): "
                               "the platform uses REPOSITORY_KEY")
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise CommandError(f"cannot create {path}: {error.strerror}") from None
        with os.fdopen(descriptor, "w") as handle:
            handle.write(stored.secret + "\n")
        self.stdout.write(f"wrote the secret of repository key keys/{stored.key_id} to {path}")
