"""`manage.py credithistory`: the logged history, one line per entry."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from monitoring.models import ApiKey, CreditLog

pytestmark = pytest.mark.django_db


def history(*args):
    out = StringIO()
    call_command("credithistory", *args, stdout=out)
    return out.getvalue()


def test_it_prints_one_line_per_entry_oldest_first():
    key = ApiKey.objects.create(hash="a" * 64, name="Production Key")
    now = timezone.now()
    CreditLog.objects.create(key=key, timestamp=now - timedelta(days=2), usage=50.0, credit_limit=100.0, remaining=50.0)
    CreditLog.objects.create(key=key, timestamp=now - timedelta(days=1), ok=False, error="OpenRouter API error (502)")
    CreditLog.objects.create(key=key, timestamp=now - timedelta(days=40), usage=1.0, remaining=99.0)
    lines = history("--days=30").splitlines()
    assert len(lines) == 2
    assert "Production Key  $50.00 remaining  (usage $50.00 / $100.00)" in lines[0]
    assert "FAILED: OpenRouter API error (502)" in lines[1]


def test_it_says_when_there_is_nothing_yet():
    assert "No checks logged in the last 30 days" in history()


def test_json_output():
    CreditLog.objects.create(usage=2.0, remaining=None, label="k")
    rows = json.loads(history("--json"))
    assert rows[0]["remaining"] is None and rows[0]["usage"] == 2.0


def test_a_bad_range_is_a_clear_error():
    with pytest.raises(CommandError, match="more than 0 and at most 3660"):
        history("--days=0")
