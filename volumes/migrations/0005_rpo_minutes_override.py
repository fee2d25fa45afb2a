"""A volume's RPO override in minutes (`rpo_minutes_override`), replacing whole hours."""

import django.core.validators
from django.db import migrations, models


def hours_to_minutes(apps, schema_editor):
    apps.get_model("volumes", "Volume").objects.filter(rpo_hours_override__isnull=False).update(
        rpo_minutes_override=models.F("rpo_hours_override") * 60)


def minutes_to_hours(apps, schema_editor):
    # Whole hours can only round: down (at least one hour), so going back loosens only sub-hour RPOs.
    Volume = apps.get_model("volumes", "Volume")
    for volume in Volume.objects.filter(rpo_minutes_override__isnull=False):
        volume.rpo_hours_override = max(1, volume.rpo_minutes_override // 60)
        volume.save(update_fields=["rpo_hours_override"])


class Migration(migrations.Migration):
    dependencies = [("volumes", "0004_data_missing_status")]

    operations = [
        migrations.AddField(
            model_name="volume",
            name="rpo_minutes_override",
            field=models.PositiveIntegerField(
                blank=True, null=True, help_text="RPO of this volume in minutes; empty follows the policy.",
                validators=[django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(527040)],
            ),
        ),
        migrations.RunPython(hours_to_minutes, minutes_to_hours),
        migrations.RemoveField(model_name="volume", name="rpo_hours_override"),
    ]
