"""The spend watch: its state per key and the RUNAWAY alert condition (its schedule follows
WATCH_INTERVAL_MINUTES: schedule.SCHEDULES, synced at every migrate and worker start)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0009_key_retirement"),
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
    ]
