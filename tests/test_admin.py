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
    assert "OpenRouter API error (502): retry" in body  # the failed check, found by its error
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
