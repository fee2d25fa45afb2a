"""`manage.py prune_audit --older-than-days N`: delete audit events older than N days.

The audit log grows with every mutation; operators keep what their policy requires (run it
from cron or a beat task). N below 1 is refused so a typo cannot erase the log.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import AuditEvent


class Command(BaseCommand):
    help = "Delete audit events older than the given number of days."

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, required=True)

    def handle(self, *args, older_than_days: int, **options):
        if older_than_days < 1:
            raise CommandError("--older-than-days must be at least 1")
        cutoff = timezone.now() - timedelta(days=older_than_days)
        deleted, _ = AuditEvent.objects.filter(created_at__lt=cutoff).delete()
        self.stdout.write(f"deleted {deleted} audit event(s) older than {cutoff:%Y-%m-%d %H:%M:%S} UTC")
