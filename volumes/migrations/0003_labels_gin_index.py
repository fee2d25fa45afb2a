"""A GIN index on Volume.labels on PostgreSQL, for the list's label filters (`labels @> ...`).

SQLite has no such index; there the label filter reads the list in name order until the page
is full (see volumes/filters.py).
"""

from django.db import migrations

INDEX = "volumes_volume_labels_gin"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = schema_editor.quote_name(apps.get_model("volumes", "Volume")._meta.db_table)
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON {table} USING gin (labels jsonb_path_ops)")


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ("volumes", "0002_upload_reservations"),
    ]

    operations = [migrations.RunPython(create_index, drop_index)]
