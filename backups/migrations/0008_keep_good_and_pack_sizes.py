from django.core.validators import MaxValueValidator
from django.db import migrations, models


def first_seen_from_verified(apps, schema_editor):
    # Rows from before this migration are packs a verify read: the catalog knew them then.
    PackVerification = apps.get_model("backups", "PackVerification")
    PackVerification.objects.filter(first_seen_at__isnull=True).update(first_seen_at=models.F("verified_at"))


class Migration(migrations.Migration):

    dependencies = [
        ('backups', '0007_pack_verification'),
    ]

    operations = [
        migrations.AddField(
            model_name='policy',
            name='keep_good',
            field=models.PositiveIntegerField(default=3, help_text='Prune never forgets the newest this-many good snapshots of a volume (verified or restored intact since they were made); 0 turns this off.', validators=[MaxValueValidator(1000)]),
        ),
        migrations.AlterField(
            model_name='packverification',
            name='verified_at',
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name='packverification',
            name='size_bytes',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='packverification',
            name='first_seen_at',
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(first_seen_from_verified, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='packverification',
            name='first_seen_at',
            field=models.DateTimeField(),
        ),
    ]
