"""The one django-q2 schedule that runs the monitoring job."""

SCHEDULE_NAME = "monitor-openrouter-credits"
TASK_FUNC = "monitoring.tasks.monitor_job"


def sync_schedule(schedule_model, interval_minutes: int):
    """Create or update the schedule by name, so re-running leaves exactly one row."""
    from django.utils import timezone

    duplicates = schedule_model.objects.filter(name=SCHEDULE_NAME).order_by("id")
    keep = duplicates.first()
    if keep is not None:
        duplicates.exclude(pk=keep.pk).delete()
    schedule, created = schedule_model.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": TASK_FUNC,
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": interval_minutes,
            "repeats": -1,
        },
    )
    if created or schedule.next_run is None:
        schedule.next_run = timezone.now()
        schedule.save(update_fields=["next_run"])
    return schedule
