"""The policy's RPO in minutes (`rpo_minutes`), replacing whole hours (`rpo_hours`)."""

import django.core.validators
from django.db import migrations, models


def hours_to_minutes(apps, schema_editor):
    apps.get_model("backups", "Policy").objects.update(rpo_minutes=models.F("rpo_hours") * 60)


def minutes_to_hours(apps, schema_editor):
    # Whole hours can only round: down (at least one hour), so going back loosens only sub-hour RPOs.
    Policy = apps.get_model("backups", "Policy")
    for policy in Policy.objects.all():
        policy.rpo_hours = max(1, policy.rpo_minutes // 60)
        policy.save(update_fields=["rpo_hours"])


class Migration(migrations.Migration):
    dependencies = [("backups", "0010_drills")]

    operations = [
        migrations.AddField(
            model_name="policy",
            name="rpo_minutes",
            field=models.PositiveIntegerField(
                default=1440,
                help_text="Recovery point objective in minutes: a volume is late when its newest completed "
                          "backup is older than this.",
                validators=[django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(527040)],
            ),
        ),
        migrations.RunPython(hours_to_minutes, minutes_to_hours),
        migrations.RemoveField(model_name="policy", name="rpo_hours"),
    ]
