"""A default policy exists after migration: daily at 18:00 UTC, RPO 24 h."""

from django.db import migrations

from backups.models import DEFAULT_RETENTION, DEFAULT_SCHEDULE


def create_default_policy(apps, schema_editor):
    Policy = apps.get_model("backups", "Policy")
    Policy.objects.get_or_create(
        name="default",
        defaults={
            "description": "Daily backup at 18:00 UTC, verify 10 % weekly, prune daily.",
            "schedule": DEFAULT_SCHEDULE,
            "timezone": "UTC",
            "retention": dict(DEFAULT_RETENTION),
            "rpo_hours": 24,
            "is_default": True,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("backups", "0002_initial")]
    operations = [migrations.RunPython(create_default_policy, migrations.RunPython.noop)]
