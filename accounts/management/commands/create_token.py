"""`manage.py create_token --name NAME --role ROLE [--expires-in-days N]`.

Prints the new token once on stdout (and nothing else there, so scripts can capture it);
the token is never logged. Exit status 1 with one line on stderr when the name is taken or
an argument is invalid.
"""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from accounts.models import TokenSource
from accounts.roles import Role
from accounts.tokens import create_token, expiry_from_days
from storage_platform.errors import PlatformError


class Command(BaseCommand):
    help = "Create an API token and print it once on stdout."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args, name, role, expires_in_days, **options):
        if name.startswith("env-"):
            raise CommandError("names starting with 'env-' are reserved for environment tokens")
        try:
            created_by = f"cli:{getpass.getuser()}"
        except (KeyError, OSError):
            created_by = "cli"
        try:
            _, plaintext = create_token(name, role, expires_at=expiry_from_days(expires_in_days),
                                        source=TokenSource.CLI, created_by=created_by)
        except PlatformError as error:
            raise CommandError(error.message) from None
        self.stdout.write(plaintext)
