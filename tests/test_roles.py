"""Roles: a signed-in user in no group reads everything and may not act; Operators (or the permission) may act;
every action is in the audit trail; Check now and Send test are rate-limited per person."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from django_q.brokers import get_broker

from monitoring import roles
from monitoring.models import Alert, AlertEvent, ApiKey, AuditEntry, Delivery, Level
from monitoring.simulator import PROD_KEY
from tests.people import make_operator, operators_group
from tests.qworker import purge_queue

READ = ["/health/", "/financial/", "/alerts/", "/export/credit-log.csv", "/export/spend-by-model.csv",
        "/export/spend-by-key.csv", "/api/status/", "/api/history/"]  # fmt: skip


@pytest.fixture
def configured(settings, webhook_receiver):
    settings.OPENROUTER_API_KEY = PROD_KEY
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    settings.ACTION_LIMIT_PER_MINUTE = 3
    purge_queue()
    yield settings
    purge_queue()


@pytest.fixture
def alert():
    key = ApiKey.objects.create(hash="a" * 64, name="Production Key", is_primary=True)
    return Alert.objects.create(key=key, condition=Alert.BALANCE, level=Level.WARNING, message="Credits low: $6.50")


@pytest.fixture
def viewer(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("vera", password="x" * 16))
    return client


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(make_operator(django_user_model.objects.create_user("otto", password="x" * 16)))
    return client


def queued() -> int:
    return get_broker().queue_size()


def state(alert: Alert) -> tuple:
    alert.refresh_from_db()
    return alert.acknowledged_at, alert.acknowledged_by, alert.snoozed_until, alert.snoozed_by


@pytest.mark.django_db
def test_the_migrations_create_both_groups_and_give_operators_the_permission():
    viewers, operators = Group.objects.get(name=roles.VIEWERS), Group.objects.get(name=roles.OPERATORS)
    assert operators.permissions.filter(codename="operate").exists()
    assert not viewers.permissions.filter(codename="operate").exists()
    assert viewers.permissions.filter(codename="view_creditlog").exists()


@pytest.mark.django_db
def test_a_user_in_no_group_reads_every_page_export_and_the_api(viewer, configured, alert):
    for path in READ:
        assert viewer.get(path).status_code == 200, path


@pytest.mark.django_db
def test_a_viewer_is_not_offered_the_buttons(viewer, configured, alert):
    health, alerts_page = viewer.get("/health/").text, viewer.get("/alerts/").text
    assert 'id="check-now"' not in health and "Check now needs the Operators role" in health
    assert 'id="send-test"' not in alerts_page and f"/alerts/{alert.pk}/acknowledge/" not in alerts_page
    assert f"/alerts/{alert.pk}/snooze/" not in alerts_page and 'id="viewer-note"' in alerts_page


@pytest.mark.django_db
def test_an_operator_is_offered_the_buttons(operator, configured, alert):
    assert 'id="check-now"' in operator.get("/health/").text
    alerts_page = operator.get("/alerts/").text
    assert 'id="send-test"' in alerts_page and f"/alerts/{alert.pk}/acknowledge/" in alerts_page
    assert 'id="viewer-note"' not in alerts_page


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["acknowledge", "snooze", "unacknowledge", "unsnooze"])
def test_a_viewer_may_not_act_on_an_alert_and_nothing_changes(viewer, configured, alert, action):
    Alert.objects.filter(pk=alert.pk).update(
        acknowledged_at=timezone.now(), acknowledged_by="otto", snoozed_until=timezone.now() + timedelta(hours=1)
    ) if action.startswith("un") else None
    before, events = state(alert), AlertEvent.objects.count()
    response = viewer.post(f"/alerts/{alert.pk}/{action}/", {"hours": "8"})
    assert response.status_code == 403
    assert "needs the Operators role" in response.text and "Nothing was changed" in response.text
    assert state(alert) == before and AlertEvent.objects.count() == events and not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_a_viewer_may_not_check_now_and_nothing_is_queued(viewer, configured):
    response = viewer.post("/health/check-now/")
    assert response.status_code == 403 and "Check now needs the Operators role" in response.text
    assert queued() == 0 and not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_a_viewer_may_not_send_a_test_and_nothing_is_sent(viewer, configured, webhook_receiver):
    response = viewer.post("/alerts/send-test/")
    assert response.status_code == 403 and "needs the Operators role" in response.text
    assert webhook_receiver.received == [] and not Delivery.objects.exists() and not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_an_operator_does_all_four_and_each_is_audited(operator, configured, alert, webhook_receiver):
    assert operator.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 302
    assert operator.post(f"/alerts/{alert.pk}/snooze/", {"hours": "8"}).status_code == 302
    acknowledged_at, acknowledged_by, snoozed_until, snoozed_by = state(alert)
    assert acknowledged_at and acknowledged_by == "otto" and snoozed_until and snoozed_by == "otto"
    assert operator.post(f"/alerts/{alert.pk}/unacknowledge/").status_code == 302
    assert operator.post(f"/alerts/{alert.pk}/unsnooze/").status_code == 302
    assert state(alert) == (None, "", None, "")
    assert operator.post("/health/check-now/").status_code == 302 and queued() == 1
    assert operator.post("/alerts/send-test/").status_code == 302 and len(webhook_receiver.received) == 1
    trail = list(AuditEntry.objects.order_by("created", "id"))
    assert [e.action for e in trail] == ["acknowledge", "snooze", "unacknowledge", "unsnooze", "check_now",
                                         "send_test"]  # fmt: skip
    assert {e.actor for e in trail} == {"otto"} and {e.address for e in trail} == {"127.0.0.1"}
    assert trail[0].target == f"alert {alert.pk}: Balance low (Production Key)" and trail[1].detail == "for 8 hours"
    page = operator.get("/alerts/").text
    assert 'id="audit-trail"' in page and "unsnooze" in page and "otto" in page


@pytest.mark.django_db
def test_a_superuser_may_act(client, django_user_model, configured, alert):
    client.force_login(django_user_model.objects.create_superuser("root", password="x" * 16))
    assert client.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 302
    assert state(alert)[1] == "root"


@pytest.mark.django_db
def test_the_permission_granted_to_one_user_lets_that_user_act(client, django_user_model, configured, alert):
    user = django_user_model.objects.create_user("pia", password="x" * 16)
    user.user_permissions.add(Permission.objects.get(codename="operate"))
    client.force_login(user)
    assert client.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 302 and state(alert)[1] == "pia"


@pytest.mark.django_db
def test_leaving_operators_takes_the_right_away(client, django_user_model, configured, alert):
    user = make_operator(django_user_model.objects.create_user("otto", password="x" * 16))
    user.groups.remove(operators_group())
    client.force_login(user)
    assert client.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 403 and state(alert)[0] is None


@pytest.mark.django_db
def test_send_test_is_rate_limited_per_person_with_when_to_retry(operator, configured, webhook_receiver,
                                                                django_user_model, client):  # fmt: skip
    for _ in range(3):
        operator.post("/alerts/send-test/")
    response = operator.post("/alerts/send-test/", follow=True)
    message = str(list(response.context["messages"])[-1])
    assert "Send test was used too often: try again in" in message and "at most 3 a minute" in message
    assert len(webhook_receiver.received) == 3 and AuditEntry.objects.filter(action="send_test").count() == 3
    # another person is not held back by otto's tests
    client.force_login(make_operator(django_user_model.objects.create_user("olga", password="x" * 16)))
    client.post("/alerts/send-test/")
    assert len(webhook_receiver.received) == 4


@pytest.mark.django_db
def test_check_now_is_rate_limited_per_person(operator, configured):
    for _ in range(3):
        operator.post("/health/check-now/")
    response = operator.post("/health/check-now/", follow=True)
    assert "Check now was used too often: try again in" in str(list(response.context["messages"])[-1])
    assert queued() == 3


@pytest.mark.django_db
def test_the_limit_frees_up_after_a_minute(operator, configured, webhook_receiver):
    for _ in range(3):
        operator.post("/alerts/send-test/")
    AuditEntry.objects.filter(action="send_test").delete()  # as if the minute had passed (the trail is the count)
    operator.post("/alerts/send-test/")
    assert len(webhook_receiver.received) == 4


def test_tokens_carry_their_role(settings):
    settings.API_TOKEN, settings.API_OPERATOR_TOKEN = "read-token-123456", "act-token-1234567"
    assert roles.token_role("read-token-123456") == roles.VIEWER
    assert roles.token_role("act-token-1234567") == roles.OPERATOR
    assert roles.token_role("guess") is None and roles.token_role(None) is None


@pytest.mark.django_db
def test_both_tokens_read_the_api(client, settings):
    settings.API_TOKEN, settings.API_OPERATOR_TOKEN = "read-token-123456", "act-token-1234567"
    for token in ("read-token-123456", "act-token-1234567"):
        assert client.get("/api/status/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/status/", headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.mark.django_db
def test_the_audit_trail_is_append_only():
    entry = AuditEntry.objects.create(actor="otto", action="acknowledge", target="alert 1")
    entry.target = "something else"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        AuditEntry.objects.update(actor="mallory")
    assert AuditEntry.objects.get().target == "alert 1"
