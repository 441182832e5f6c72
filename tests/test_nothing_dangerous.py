"""Nothing dangerous in reach: django-q2's schedules and tasks are read-only in the admin (superusers included), and a
secret in a notification URL's path is masked wherever a person or a log sees it."""

from __future__ import annotations

import logging

import pytest
from django_q.models import Schedule, Success

from monitoring import channelmask
from monitoring.models import Delivery
from monitoring.schedule import SCHEDULE_NAME, TASK_FUNC, sync_schedule
from monitoring.simulator import PROD_KEY
from tests.people import make_operator
from tests.test_faults_client import LogTail

SECRET = "s3cr3tWebhookToken9"


@pytest.fixture
def superuser(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x" * 16))
    return client


@pytest.mark.django_db
def test_a_superuser_cannot_add_a_schedule_calling_an_arbitrary_function(superuser, tmp_path):
    marker = tmp_path / "pwned"
    form = {"name": "evil", "func": "os.system", "args": f"'touch {marker}'", "schedule_type": "O", "repeats": "-1",
            "next_run_0": "2026-01-01", "next_run_1": "00:00:00", "cluster": ""}  # fmt: skip
    assert superuser.get("/admin/django_q/schedule/add/").status_code == 403
    assert superuser.post("/admin/django_q/schedule/add/", form).status_code == 403
    assert not Schedule.objects.filter(func="os.system").exists() and not marker.exists()


@pytest.mark.django_db
def test_a_superuser_cannot_change_or_delete_the_monitoring_schedule(superuser):
    sync_schedule(Schedule, 360)
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    change = f"/admin/django_q/schedule/{schedule.pk}/change/"
    page = superuser.get(change)
    assert page.status_code == 200 and 'type="submit"' not in page.text.split('id="schedule_form"')[-1][:20000]
    form = {"name": SCHEDULE_NAME, "func": "os.system", "schedule_type": "I", "minutes": "1", "repeats": "-1"}
    assert superuser.post(change, form).status_code == 403
    assert superuser.post(f"/admin/django_q/schedule/{schedule.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [schedule.pk], "post": "yes"}
    superuser.post("/admin/django_q/schedule/", bulk)
    schedule.refresh_from_db()
    assert schedule.func == TASK_FUNC and Schedule.objects.filter(name=SCHEDULE_NAME).count() == 1


@pytest.mark.django_db
def test_a_superuser_cannot_resubmit_or_delete_tasks(superuser):
    task = Success.objects.create(id="a" * 32, name="done", func="os.system", started="2026-01-01T00:00Z",
                                  stopped="2026-01-01T00:00Z", success=True)  # fmt: skip
    assert superuser.get(f"/admin/django_q/success/{task.pk}/change/").status_code == 200  # it can be read
    superuser.post("/admin/django_q/success/", {"action": "resubmit_task", "_selected_action": [task.pk]})
    assert superuser.post(f"/admin/django_q/success/{task.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Success.objects.filter(pk=task.pk).exists()
    from django_q.brokers import get_broker

    assert get_broker().queue_size() == 0


@pytest.mark.django_db
def test_the_audit_trail_is_read_only_in_the_admin(superuser):
    from monitoring.models import AuditEntry

    entry = AuditEntry.objects.create(actor="otto", action="acknowledge", target="alert 1")
    assert superuser.get(f"/admin/monitoring/auditentry/{entry.pk}/change/").status_code == 200
    assert superuser.post(f"/admin/monitoring/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert superuser.get("/admin/monitoring/auditentry/add/").status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.parametrize(
    "url, hidden",
    [
        (f"json://127.0.0.1:8080/hooks/{SECRET}", SECRET),
        (f"jsons://hooks.example.com/{SECRET}", SECRET),
        ("ntfy://ntfy.sh/my-private-topic-42", "my-private-topic-42"),
        ("ntfy://my-private-topic-42", "my-private-topic-42"),
        (f"form://127.0.0.1/{SECRET}", SECRET),
    ],
)
def test_a_secret_in_a_path_is_masked_the_apprise_way(url, hidden):
    masked = channelmask.mask_url(url)
    assert hidden not in masked and "..." in masked, masked


@pytest.mark.django_db
def test_a_json_url_with_a_secret_in_its_path_is_masked_on_alerts_and_in_the_logs(
    client, django_user_model, settings, webhook_receiver
):
    settings.OPENROUTER_API_KEY = PROD_KEY
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hooks/{SECRET}"
    client.force_login(make_operator(django_user_model.objects.create_user("otto", password="x" * 16)))
    tail = LogTail()
    logging.getLogger("apprise").setLevel(logging.DEBUG)  # Apprise's own lines too, had they carried the URL
    try:
        client.post("/alerts/send-test/")  # delivered
        webhook_receiver.fail = True
        client.post("/alerts/send-test/")  # failed: Apprise's error text is stored and logged
    finally:
        logging.getLogger("apprise").setLevel(logging.NOTSET)
    assert webhook_receiver.received[0]["path"] == f"/hooks/{SECRET}"  # the real URL was used to send
    page = client.get("/alerts/").text
    deliveries = list(Delivery.objects.values_list("channel", "error"))
    assert len(deliveries) == 2 and [d for d in deliveries if d[1]], deliveries
    for where in (page, tail.text(), *[text for pair in deliveries for text in pair]):
        assert SECRET not in where
    assert f"json://{webhook_receiver.url}/hooks/s...9" in page
    assert "s...9" in tail.text()
