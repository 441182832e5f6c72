"""The Django admin: the credit log is inspectable, searchable, filterable, and read-only."""

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import ApiKey, CreditLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def logs():
    prod = ApiKey.objects.create(hash="a" * 64, name="Production Key", is_primary=True)
    dev = ApiKey.objects.create(hash="b" * 64, name="Dev Key")
    now = timezone.now()
    CreditLog.objects.create(key=prod, timestamp=now, label="prod-label", usage=54.77, remaining=45.23)
    CreditLog.objects.create(key=dev, timestamp=now - timedelta(days=40), label="dev-label", usage=3.1, remaining=16.87)
    CreditLog.objects.create(key=prod, ok=False, error="OpenRouter API error (502): retry", http_status=502)
    return prod, dev


def test_it_requires_a_staff_login(client, logs):
    response = client.get("/admin/monitoring/creditlog/")
    assert response.status_code == 302 and "login/" in response["Location"]


def test_the_credit_log_lists_every_check(admin_client, logs):
    response = admin_client.get("/admin/monitoring/creditlog/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Production Key" in body and "Dev Key" in body and "45.23" in body


def test_it_searches_by_label_and_error(admin_client, logs):
    body = admin_client.get("/admin/monitoring/creditlog/", {"q": "dev-label"}).content.decode()
    assert "16.87" in body and "45.23" not in body
    body = admin_client.get("/admin/monitoring/creditlog/", {"q": "502"}).content.decode()
    assert 'class="field-http_status">502<' in body  # the failed check, found by its error
    assert "16.87" not in body and "45.23" not in body  # and nothing else


def test_it_filters_by_key_and_by_date(admin_client, logs):
    prod, dev = logs
    body = admin_client.get("/admin/monitoring/creditlog/", {"key__id__exact": dev.pk}).content.decode()
    assert "16.87" in body and "45.23" not in body
    body = admin_client.get(
        "/admin/monitoring/creditlog/", {"timestamp__gte": (timezone.now() - timedelta(days=7)).date().isoformat()}
    ).content.decode()
    assert "45.23" in body and "16.87" not in body


def test_rows_cannot_be_added_or_changed(admin_client, logs):
    assert admin_client.get("/admin/monitoring/creditlog/add/").status_code == 403
    row = CreditLog.objects.filter(ok=True).first()
    response = admin_client.post(f"/admin/monitoring/creditlog/{row.pk}/change/", {"usage": "0"})
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.usage != 0


@pytest.mark.parametrize("model", ["apikey", "activity", "alert", "delivery"])
def test_the_other_tables_are_browsable(admin_client, logs, model):
    assert admin_client.get(f"/admin/monitoring/{model}/").status_code == 200


def test_the_admin_is_an_inspector_with_creditmons_name_money_and_utc_times(admin_client, logs):
    prod, _ = logs
    row = CreditLog.objects.filter(ok=True, key=prod).first()
    row.usage = 69.44963372999999
    row.save()
    body = admin_client.get("/admin/monitoring/creditlog/").content.decode()
    assert "$69.45" in body and "69.4496" not in body  # money as $ with cents in the list
    assert row.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC") in body
    assert "creditmon admin" in body and "Django administration" not in body
    detail = admin_client.get(f"/admin/monitoring/creditlog/{row.pk}/change/").content.decode()
    assert "69.44963372999999" in detail  # the stored value itself on the detail page
    assert row.timestamp.strftime("%Y-%m-%d %H:%M:%S") in detail
    index = admin_client.get("/admin/").content.decode()
    assert "Activity rows" in index and "Activitys" not in index and "Credit log entries" in index


def test_nothing_can_be_deleted_from_the_log_or_the_keys(admin_client, logs):
    prod, _ = logs
    row = CreditLog.objects.first()
    for url in (
        f"/admin/monitoring/creditlog/{row.pk}/delete/",
        f"/admin/monitoring/apikey/{prod.pk}/delete/",
    ):
        assert admin_client.post(url, {"post": "yes"}).status_code == 403
    response = admin_client.post(
        "/admin/monitoring/apikey/", {"action": "delete_selected", "_selected_action": [prod.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    assert ApiKey.objects.filter(pk=prod.pk).exists() and CreditLog.objects.filter(key=prod).exists()
    assert admin_client.get("/admin/monitoring/activity/add/").status_code == 403
    body = admin_client.get("/admin/monitoring/activity/").content.decode()
    assert "Add activity row" not in body


def test_the_admin_says_demo_mode_in_the_demo(admin_client, logs, settings):
    settings.CREDITMON_DEMO = True
    assert "Demo mode: simulated figures" in admin_client.get("/admin/").content.decode()
    settings.CREDITMON_DEMO = False
    assert "Demo mode" not in admin_client.get("/admin/").content.decode()
