"""The spend watch: its state per key, the RUNAWAY alert condition, and its schedule (declared idempotently)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from monitoring.watch import WATCH_SCHEDULE_NAME, sync_watch_schedule


def create_schedule(apps, schema_editor):
    sync_watch_schedule(apps.get_model("django_q", "Schedule"), settings.WATCH_INTERVAL_MINUTES)


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=WATCH_SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0005_activity_covering_index"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="WatchState",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "readings",
                    models.JSONField(default=list, help_text="[[ISO time, cumulative usage], ...] of the last hour"),
                ),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "key",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="watch_state",
                        to="monitoring.apikey",
                    ),
                ),
            ],
        ),
        migrations.AlterField(
            model_name="alert",
            name="condition",
            field=models.CharField(
                choices=[
                    ("balance", "Balance low"),
                    ("forecast", "Running out soon"),
                    ("spike", "Spend spike"),
                    ("failures", "Checks failing"),
                    ("stale", "No recent check"),
                    ("key_limit", "Key limit nearly used"),
                    ("budget", "Monthly budget"),
                    ("expiry", "Key expiring"),
                    ("model_spike", "Model spend spike"),
                    ("topup_missed", "Auto top-up missing"),
                    ("runaway", "Runaway spend"),
                ],
                max_length=20,
            ),
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
