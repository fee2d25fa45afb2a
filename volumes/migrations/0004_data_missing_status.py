"""Volume status `data_missing`: a volume that `manage.py rebuild_catalog` recreated from its
backups but whose data folder is not there. Only the choices change (no data migration)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("volumes", "0003_labels_gin_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="volume",
            name="status",
            field=models.CharField(choices=[("creating", "Creating"), ("available", "Available"),
                                            ("restoring", "Restoring"), ("deleting", "Deleting"),
                                            ("error", "Error"), ("data_missing", "Data missing")],
                                   default="creating", max_length=16),
        ),
    ]
