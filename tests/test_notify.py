"""Notifications through Apprise to real local receivers: routing, masking, failures and retries."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer

import pytest
from django.core.management import CommandError, call_command

from monitoring import channelmask, notify, tasks
from monitoring.models import AlertEvent, Delivery
from monitoring.simulator import PROD_KEY
from tests.conftest import _Receiver

START = datetime(2030, 1, 7, 1, 0, tzinfo=UTC)


@pytest.fixture
def other_receiver():
    """A second real webhook receiver, so one can break while the other works."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received, server.fail = [], False
    server.url = f"127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def quiet_loop(sim, settings):
    """Only the balance condition can fire, and failed checks are not retried (fast)."""
    settings.FORECAST_WARNING_DAYS = 0
    settings.FORECAST_CRITICAL_DAYS = 0
    settings.SPIKE_MIN_USD = 1e9
    settings.OPENROUTER_MAX_RETRIES = 0
    settings.NOTIFY_MAX_ATTEMPTS = 3
    return sim


def run(sim, hours: float, remaining: float | None = None, limit: float = 100.0) -> str:
    if remaining is not None:
        sim.set_key(PROD_KEY, limit=limit, usage=round(limit - remaining, 2), limit_remaining=None)
    return tasks.monitor_job(now=START + timedelta(hours=hours))


class TestChannels:
    def test_urls_split_on_spaces_and_newlines_with_optional_level_tags(self, settings):
        settings.NOTIFY_URLS = (
            "json://127.0.0.1:9000/all\n  critical=json://127.0.0.1:9000/sms "
            "critical,warning=mailto://127.0.0.1:2525?from=a@example.com&to=b@example.org"
        )
        found = notify.channels()
        assert [c.tags for c in found] == [frozenset(), {"critical"}, {"critical", "warning"}]
        assert [c.levels for c in found] == ["every level", "critical", "critical, warning"]
        assert found[2].url == "mailto://127.0.0.1:2525?from=a@example.com&to=b@example.org"
        assert not any(c.error for c in found)

    def test_a_masked_channel_hides_passwords_and_tokens(self, settings):
        settings.NOTIFY_URLS = (
            "json://ops:hunter2secret@127.0.0.1:9000/hook discord://123456789/abcdefghijklmnopqrstuvwxyz"
        )
        webhook, discord = notify.channels()
        assert webhook.masked == "json://ops:****@127.0.0.1:9000/hook"
        assert "abcdefghijklmnopqrstuvwxyz" not in discord.masked and discord.masked.startswith("discord://")
        assert webhook.id == hashlib.sha256(b"json://ops:hunter2secret@127.0.0.1:9000/hook").hexdigest()
        assert "hunter2secret" not in repr(webhook)

    def test_an_unknown_level_tag_or_scheme_is_reported(self, settings):
        settings.NOTIFY_URLS = "critcal=json://127.0.0.1:9000/hook nosuchscheme://x/y"
        typo, bad = notify.channels()
        assert "unknown level tag critcal" in typo.error
        assert "not a URL Apprise can use" in bad.error
        assert bad.masked == "nosuchscheme://…"

    def test_a_process_without_apprise_gets_the_same_masks_from_a_child_and_stays_without_it(self):
        """The web worker shows masks without loading Apprise's plugins (about 19 MB): a child process masks."""
        urls = [
            "json://ops:hunter2secret@127.0.0.1:9000/hook",
            "json://127.0.0.1:9000/demo-inbox-0123456789abcdef",
            "discord://123456789/abcdefghijklmnopqrstuvwxyz",
            "ntfy://my-private-topic",
            "nosuchscheme://x/y",
        ]
        script = (
            "import json, sys, django; django.setup(); from monitoring import notify; "
            "found = notify.parse_urls(sys.stdin.read()); "
            "print(json.dumps({'masks': [c.masked for c in found], 'errors': [c.error for c in found], "
            "'apprise': 'apprise' in sys.modules}))"
        )
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "creditmon.settings"}
        done = subprocess.run(
            [sys.executable, "-c", script], input=" ".join(urls), capture_output=True, text=True, env=env, check=True
        )
        child = json.loads(done.stdout)
        assert child["apprise"] is False, "parsing the channels loaded Apprise into the process"
        here = notify.parse_urls(" ".join(urls))  # this test process: Apprise loaded here (or by mask_url itself)
        assert child["masks"] == [channelmask.mask_url(url) for url in urls] == [c.masked for c in here]
        assert child["errors"] == [c.error for c in here] and child["errors"][-1]
        assert "hunter2secret" not in done.stdout and "abcdefghijklmnop" not in done.stdout

    def test_a_child_that_gives_no_answer_is_logged_without_the_urls_and_masking_goes_on(self, monkeypatch, caplog):
        urls = ("json://ops:hunter2secret@127.0.0.1:9000/hook",)
        monkeypatch.setattr(sys, "executable", "/bin/echo")  # prints its arguments: not JSON
        assert channelmask._masks_from_child(urls) is None
        monkeypatch.setattr(sys, "executable", "/nonexistent/python")
        assert channelmask._masks_from_child(urls) is None
        warnings = [r.getMessage() for r in caplog.records if "child process" in r.getMessage()]
        assert len(warnings) == 2 and "exit status" not in warnings[1]
        assert not any("hunter2secret" in w or "127.0.0.1" in w for w in warnings)
        channelmask._masks.cache_clear()
        assert channelmask.mask_urls(urls) == ["json://ops:****@127.0.0.1:9000/hook"]  # in this process, then


@pytest.mark.django_db
class TestDelivery:
    def test_a_broken_channel_fails_alone_and_is_retried_next_run(
        self, quiet_loop, settings, webhook_receiver, other_receiver, smtp_sink
    ):
        webhook_receiver.fail = True
        settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/broken {smtp_sink.url} json://{other_receiver.url}/ok"
        run(quiet_loop, 0, remaining=8)

        broken = Delivery.objects.get(channel__endswith="/broken")
        assert (broken.status, broken.attempts) == (Delivery.FAILED, 1)
        assert "500" in broken.error
        assert broken.duration_ms is not None
        assert len(other_receiver.received) == 1
        assert len(smtp_sink.messages) == 1
        assert smtp_sink.messages[0]["Subject"].startswith("[WARNING]")
        assert Delivery.objects.filter(status=Delivery.SENT).count() == 2

        webhook_receiver.fail = False
        run(quiet_loop, 6)
        broken.refresh_from_db()
        assert (broken.status, broken.attempts, broken.error) == (Delivery.SENT, 2, "")
        assert webhook_receiver.received[0]["body"]["title"].startswith("[WARNING]")
        assert len(other_receiver.received) == 1 and len(smtp_sink.messages) == 1

    def test_a_failing_channel_is_retried_until_the_attempts_run_out(self, quiet_loop, settings, closed_port):
        settings.NOTIFY_URLS = f"json://ops:hunter2secret@127.0.0.1:{closed_port}/hook"
        for hours in (0, 1, 2, 3, 4):
            run(quiet_loop, hours, remaining=8 if hours == 0 else None)
        delivery = Delivery.objects.get()
        assert (delivery.status, delivery.attempts) == (Delivery.FAILED, 3)
        assert "connection error" in delivery.error.lower()
        assert delivery.channel == f"json://ops:****@127.0.0.1:{closed_port}/hook"
        assert "hunter2secret" not in delivery.error + delivery.channel

    def test_a_critical_only_channel_hears_only_critical_news(self, quiet_loop, settings, webhook_receiver):
        settings.NOTIFY_URLS = f"critical=json://{webhook_receiver.url}/sms json://{webhook_receiver.url}/all"
        run(quiet_loop, 0, remaining=8)
        run(quiet_loop, 6, remaining=0)
        run(quiet_loop, 12, remaining=100, limit=200)
        sent = [(r["path"], r["body"]["title"].split("]")[0] + "]") for r in webhook_receiver.received]
        assert sent == [
            ("/all", "[WARNING]"),
            ("/sms", "[CRITICAL]"),
            ("/all", "[CRITICAL]"),
            ("/sms", "[RESOLVED]"),
            ("/all", "[RESOLVED]"),
        ]

    def test_an_unusable_url_is_a_failed_delivery_while_others_deliver(self, quiet_loop, settings, webhook_receiver):
        settings.NOTIFY_URLS = f"nosuchscheme://x/y json://{webhook_receiver.url}/hook"
        run(quiet_loop, 0, remaining=8)
        bad = Delivery.objects.get(channel="nosuchscheme://…")
        assert bad.status == Delivery.FAILED and "not a URL Apprise can use" in bad.error
        assert len(webhook_receiver.received) == 1

    def test_a_channel_removed_from_the_settings_is_not_retried(self, quiet_loop, settings, closed_port, smtp_sink):
        settings.NOTIFY_URLS = f"json://127.0.0.1:{closed_port}/hook"
        run(quiet_loop, 0, remaining=8)
        settings.NOTIFY_URLS = smtp_sink.url
        run(quiet_loop, 1)
        delivery = Delivery.objects.get()
        assert delivery.status == Delivery.FAILED and "no longer in NOTIFY_URLS" in delivery.error
        assert delivery.attempts == settings.NOTIFY_MAX_ATTEMPTS
        assert not smtp_sink.messages

    def test_no_api_key_reaches_a_notification(self, quiet_loop, settings, webhook_receiver):
        settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
        run(quiet_loop, 0, remaining=8)
        assert PROD_KEY not in str(webhook_receiver.received)
        assert "Top up the credits: https://openrouter.ai/settings/credits" in str(webhook_receiver.received)


@pytest.mark.django_db
class TestSendTest:
    def test_it_sends_to_every_channel_whatever_its_tags(self, settings, webhook_receiver, smtp_sink):
        settings.NOTIFY_URLS = f"critical=json://{webhook_receiver.url}/sms {smtp_sink.url}"
        deliveries = notify.send_test("alice")
        assert [d.status for d in deliveries] == [Delivery.SENT, Delivery.SENT]
        assert webhook_receiver.received[0]["body"]["title"] == "creditmon test notification"
        assert "sent by alice" in webhook_receiver.received[0]["body"]["message"]
        assert smtp_sink.messages[0]["Subject"] == "creditmon test notification"
        event = AlertEvent.objects.get()
        assert (event.kind, event.alert, event.user) == (AlertEvent.TEST, None, "alice")

    def test_the_command_refuses_without_channels(self, settings):
        settings.NOTIFY_URLS = ""
        with pytest.raises(CommandError, match="NOTIFY_URLS is empty"):
            call_command("sendtestnotification")

    def test_the_command_reports_each_channel(self, settings, smtp_sink, capsys):
        settings.NOTIFY_URLS = smtp_sink.url
        call_command("sendtestnotification")
        out = capsys.readouterr().out
        assert "sent: mailto://127.0.0.1" in out and "Sent to 1 channel(s)." in out
        assert len(smtp_sink.messages) == 1

    def test_the_command_fails_when_a_channel_fails(self, settings, smtp_sink, closed_port, capsys):
        settings.NOTIFY_URLS = f"{smtp_sink.url} json://127.0.0.1:{closed_port}/hook"
        with pytest.raises(CommandError, match="1 of 2 channels failed"):
            call_command("sendtestnotification")
        assert "failed: json://127.0.0.1" in capsys.readouterr().out
        assert len(smtp_sink.messages) == 1
