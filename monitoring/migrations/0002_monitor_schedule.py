"""Declare the 6-hourly monitoring schedule once, idempotently (never schedule() at start-up)."""

from django.conf import settings
from django.db import migrations

from monitoring.schedule import SCHEDULE_NAME, sync_schedule


def create_schedule(apps, schema_editor):
    sync_schedule(apps.get_model("django_q", "Schedule"), settings.CHECK_INTERVAL_MINUTES)


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
