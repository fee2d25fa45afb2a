"""`manage.py bootstrap_tokens`: sync `env-admin`/`env-backup`/`env-read` with the environment.

Also runs after every `migrate`; this command is for operators who rotate a token without
migrating. Prints what changed per role, never a token.
"""

from django.core.management.base import BaseCommand

from accounts.bootstrap import bootstrap_name, sync_bootstrap_tokens


class Command(BaseCommand):
    help = "Create, rotate or revoke the environment bootstrap tokens."

    def handle(self, *args, **options):
        for role, outcome in sync_bootstrap_tokens().items():
            self.stdout.write(f"{bootstrap_name(role)}: {outcome}")
