"""`manage.py reconcile_jobs`: run the job reconciler once (beat runs it every minute).

Re-sends queued jobs whose message was lost and requeues or fails running jobs whose worker
stopped heartbeating (backups/scheduling/reconciler.py). Prints one summary line.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Re-send lost queued jobs; requeue or fail jobs whose worker stopped heartbeating."

    def handle(self, *args, **options):
        from backups.scheduling.reconciler import reconcile

        result = reconcile()
        self.stdout.write("reconcile_jobs: " + " ".join(f"{key}={value}" for key, value in result.as_dict().items()))
