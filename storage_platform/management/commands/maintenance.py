"""`manage.py maintenance on|off|status`: switch API mutations to 503 + Retry-After for upgrades.

The switch is `settings.MAINTENANCE_FILE`, so every API process sees it at once; reads,
/health, /ready and /metrics keep working so automation can watch the upgrade.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from storage_platform.maintenance import maintenance_enabled


class Command(BaseCommand):
    help = "Turn maintenance mode on or off, or show it (mutations answer 503 while it is on)."

    def add_arguments(self, parser):
        parser.add_argument("state", choices=["on", "off", "status"])

    def handle(self, *args, state, **options):
        path = settings.MAINTENANCE_FILE
        try:
            if state == "on":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif state == "off":
                path.unlink(missing_ok=True)
        except OSError as error:
            raise CommandError(f"cannot change {path}: {error.strerror}") from None
        self.stdout.write(f"maintenance: {'on' if maintenance_enabled() else 'off'}")
