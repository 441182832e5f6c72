"""The admin works under its Content-Security-Policy in a real Chromium: no violation (a console error) on the index,
a changelist with its filters and date hierarchy, and a change form."""

from __future__ import annotations

import pytest

from monitoring.models import Alert, AlertEvent, ApiKey, Level

from .conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_the_admin_passes_its_csp(page, live_server, django_user_model, console_errors):
    key = ApiKey.objects.create(hash="b" * 64, name="Production Key", is_primary=True)
    alert = Alert.objects.create(key=key, condition=Alert.BALANCE, level=Level.WARNING, message="Credits low")
    AlertEvent.objects.create(alert=alert, kind=AlertEvent.OPENED, level=Level.WARNING, message="Credits low")
    user = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    policies = []
    for path in ("/admin/", "/admin/monitoring/alert/", "/admin/monitoring/creditlog/?ok__exact=1",
                 f"/admin/monitoring/alert/{alert.pk}/change/", f"/admin/auth/user/{user.pk}/change/",
                 "/admin/auth/group/add/", "/admin/django_q/schedule/"):  # fmt: skip
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        policies.append(response.headers.get("content-security-policy"))
        page.wait_for_load_state("networkidle")
    assert policies and all(p and "script-src 'self'" in p for p in policies), policies
    # The widgets the admin's scripts draw are there (the scripts ran): the user form's permission chooser.
    page.goto(f"{live_server.url}/admin/auth/user/{user.pk}/change/")
    page.wait_for_selector("#id_user_permissions_add_all", state="attached")
    assert console_errors == []
