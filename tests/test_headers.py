"""Headers like a bank's: no shared cache keeps anyone's pages, API answers or exports; one strict CSP everywhere,
the admin included; static files stay cacheable."""

from __future__ import annotations

import pytest

from monitoring.simulator import PROD_KEY

PRIVATE = ["/health/", "/financial/", "/alerts/", "/api/status/", "/api/history/", "/export/credit-log.csv",
           "/export/spend-by-model.csv", "/export/spend-by-key.csv", "/admin/",
           "/admin/monitoring/creditlog/"]  # fmt: skip


@pytest.fixture
def logged_in(client, django_user_model, settings):
    settings.OPENROUTER_API_KEY = PROD_KEY
    client.force_login(django_user_model.objects.create_superuser("root", password="x" * 16))
    return client


def directives(response) -> set[str]:
    return {part.strip() for part in response["Cache-Control"].split(",")}


@pytest.mark.django_db
@pytest.mark.parametrize("path", PRIVATE)
def test_authenticated_answers_are_private_and_not_stored(logged_in, path):
    response = logged_in.get(path)
    assert response.status_code == 200
    assert {"private", "no-store"} <= directives(response), response["Cache-Control"]


@pytest.mark.django_db
def test_a_token_read_of_the_api_is_private_and_not_stored(client, settings):
    settings.API_TOKEN = "read-token-123456"
    response = client.get("/api/status/", headers={"Authorization": "Bearer read-token-123456"})
    assert response.status_code == 200 and {"private", "no-store"} <= directives(response)


@pytest.mark.django_db
def test_the_login_page_is_not_stored_either(client):
    response = client.get("/accounts/login/")  # it carries a CSRF token bound to this browser's cookie
    assert {"private", "no-store"} <= directives(response)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health/", "/alerts/", "/admin/", "/admin/monitoring/alert/"])
def test_every_page_and_the_admin_have_the_strict_csp(logged_in, path):
    policy = logged_in.get(path)["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


@pytest.mark.django_db
def test_healthz_keeps_its_own_no_cache_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_static_files_stay_cacheable(client, settings):
    settings.WHITENOISE_USE_FINDERS = True  # no collectstatic in tests: whitenoise finds the files where they are
    response = client.get("/static/css/creditmon.css")
    assert response.status_code == 200 and "max-age=" in response["Cache-Control"], response.get("Cache-Control")
    assert "no-store" not in response["Cache-Control"] and "private" not in response["Cache-Control"]
