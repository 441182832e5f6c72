"""Agent tasks: opened, updated and closed by the alert lifecycle; claimed, completed and dismissed by agents
over the API; posted, signed, to a real local webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from monitoring import agent_tasks, agent_webhook, tasks
from monitoring.models import AgentTask, Alert, AuditEntry, TaskDelivery
from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY

START = datetime(2030, 1, 7, 1, 0, tzinfo=UTC)
SECRET = "whsec-test-secret"
SCHEMA = json.loads((Path(__file__).parent.parent / "monitoring/schemas/task-webhook.v1.json").read_text())


@pytest.fixture
def agents(sim, settings, webhook_receiver):
    """Only the balance condition fires; tasks go to a real local receiver, signed."""
    settings.FORECAST_WARNING_DAYS = 0
    settings.FORECAST_CRITICAL_DAYS = 0
    settings.SPIKE_MIN_USD = 1e9
    settings.OPENROUTER_MAX_RETRIES = 0
    settings.AGENT_WEBHOOK_URL = f"http://{webhook_receiver.url}/hooks/creditmon"
    settings.AGENT_WEBHOOK_SECRET = SECRET
    settings.AGENT_WEBHOOK_TIMEOUT = 2.0
    settings.API_TOKEN = "reader-token-123456"
    settings.API_OPERATOR_TOKEN = "operator-token-123456"
    settings.NOTIFY_MAX_ATTEMPTS = 3
    return sim


def run(sim, hours: float, remaining: float | None = None) -> str:
    if remaining is not None:
        sim.set_key(PROD_KEY, limit=100.0, usage=round(100.0 - remaining, 2), limit_remaining=None)
    return tasks.monitor_job(now=START + timedelta(hours=hours))


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def operator() -> dict:
    return bearer("operator-token-123456")


def post(client, task_id, action: str, headers: dict, **body):
    return client.post(f"/api/tasks/{task_id}/{action}", json.dumps(body), content_type="application/json",
                       headers=headers)  # fmt: skip


def received(receiver) -> list[dict]:
    return [r for r in receiver.received if r["path"] == "/hooks/creditmon"]


def validate(body: dict) -> None:
    jsonschema.validate(body, SCHEMA)


@pytest.mark.django_db
class TestTheAlertLifecycle:
    def test_a_low_balance_opens_an_alert_and_an_open_top_up_task_whose_body_carries_the_figures(self, agents):
        run(agents, 0, remaining=4.5)
        alert = Alert.objects.get(condition=Alert.BALANCE)
        task = AgentTask.objects.get(alert=alert)
        assert (task.kind, task.state, task.key) == (AgentTask.TOP_UP, AgentTask.OPEN, alert.key)
        assert "Balance: $4.50 remaining" in task.body
        assert "Burn Rate:" in task.body and "Days Left:" in task.body
        assert task.evidence["figures"]["remaining"] == 4.5
        assert task.evidence["level"] == "WARNING"
        actions = {a["action"]: a for a in task.suggested_actions}
        assert actions["raise_key_limit"]["text"].endswith("own limit ($4.50 of $100.00 left)")  # its cap binds
        assert actions["top_up"]["url"] == "https://openrouter.ai/settings/credits"
        assert "$10.00" in task.done_when
        document = agent_tasks.task_document(task)
        assert document["schema"] == "creditmon.task/v1" and document["alert"] == alert.pk
        assert document["key"] == alert.key.display_name and "..." in document["key"]  # the masked label

    def test_the_task_follows_its_alert_and_closes_with_the_reason(self, agents):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        run(agents, 1, remaining=0.0)  # exhausted: the alert escalates to CRITICAL, the task follows
        task.refresh_from_db()
        assert task.state == AgentTask.OPEN and "CRITICAL" in task.title
        assert "Balance: $0.00 remaining" in task.body
        run(agents, 2, remaining=60.0)
        task.refresh_from_db()
        assert task.state == AgentTask.DONE and task.note.startswith("alert resolved: ")
        assert AgentTask.objects.count() == 1  # one task per alert
        events = [json.loads(d.body)["event"] for d in TaskDelivery.objects.order_by("id")]
        assert events == ["task.created", "task.updated", "task.closed"]

    def test_a_task_marked_done_opens_again_when_its_alert_gets_worse(self, agents):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        agent_tasks.complete(task.pk, "topped up (not yet visible)", by="bot")
        run(agents, 1, remaining=0.0)
        task.refresh_from_db()
        assert task.state == AgentTask.OPEN and "reopened" in task.note

    def test_a_rejected_key_asks_for_a_new_key(self, agents, settings):
        settings.FAILURES_BEFORE_UNKNOWN = 1
        run(agents, 0)
        agents.set_failure("http401")
        run(agents, 1)
        task = AgentTask.objects.get(alert__condition=Alert.FAILURES)
        assert task.kind == AgentTask.REPLACE_KEY

    def test_a_run_opening_many_alerts_writes_their_tasks_together_as_one_at_a_time_would(self, agents, settings):
        """The tasks of one run come from one status of their keys, written in one statement: each is what
        composing it alone, from a status of its own key, gives."""
        settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
        agents.set_scenario("many-keys")  # 150 listed keys: those capped at $10 run low
        run(agents, 0)
        opened = AgentTask.objects.filter(alert__condition=Alert.BALANCE).select_related("alert", "key")
        assert opened.count() >= 40, "the many-keys world opens a balance alert on every key capped at $10"
        now = START
        for task in opened:
            alone = agent_tasks.compose(task.alert, now)  # builds the status of this key alone
            assert (task.title, task.body, task.evidence) == (alone["title"], alone["body"], alone["evidence"])
        created = [d for d in TaskDelivery.objects.all() if d.event == agent_webhook.CREATED]
        assert len(created) == opened.count(), "each new task is posted once"

    def test_when_the_tasks_cannot_be_written_together_each_is_written_alone(self, agents, settings, monkeypatch):
        settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
        agents.set_scenario("many-keys")

        def refuse(*args, **kwargs):
            raise RuntimeError("the bulk insert is refused")

        monkeypatch.setattr(type(AgentTask.objects), "bulk_create", refuse)
        run(agents, 0)
        alerts = Alert.objects.filter(condition=Alert.BALANCE)
        assert alerts.count() >= 40
        assert AgentTask.objects.filter(alert__in=alerts).count() == alerts.count()


@pytest.mark.django_db
class TestTheWebhook:
    def test_each_task_is_posted_with_a_valid_signature_and_the_schema(self, agents, webhook_receiver):
        run(agents, 0, remaining=4.5)
        (hit,) = received(webhook_receiver)
        raw = TaskDelivery.objects.get().body.encode()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert hit["headers"]["X-Creditmon-Signature"] == expected
        assert hit["body"]["event"] == "task.created" and hit["body"]["task"]["kind"] == "top_up"
        assert json.loads(raw) == hit["body"]
        validate(hit["body"])

    def test_a_dead_receiver_is_a_failed_row_retried_as_a_new_row(self, agents, webhook_receiver):
        webhook_receiver.fail = True
        run(agents, 0, remaining=4.5)
        assert Alert.objects.filter(condition=Alert.BALANCE).exists()  # the check went on
        first = TaskDelivery.objects.get()
        assert (first.status, first.http_status, first.attempt) == ("failed", 500, 1)
        webhook_receiver.fail = False
        run(agents, 1, remaining=4.5)
        attempts = list(TaskDelivery.objects.order_by("id"))
        assert [(d.attempt, d.status) for d in attempts] == [(1, "failed"), (2, "sent")]
        assert attempts[0].message_id == attempts[1].message_id and attempts[0].body == attempts[1].body
        assert len(received(webhook_receiver)) == 1

    def test_a_closed_port_never_stops_the_check(self, agents, settings):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings.AGENT_WEBHOOK_URL = f"http://127.0.0.1:{port}/gone"
        assert run(agents, 0, remaining=4.5).startswith("WARNING")
        delivery = TaskDelivery.objects.get()
        assert delivery.status == "failed" and "Connection" in delivery.error

    def test_every_payload_of_a_whole_lifecycle_matches_the_schema(self, agents, client, webhook_receiver):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        post(client, task.pk, "claim", operator(), agent="budget-bot")
        run(agents, 1, remaining=0.0)
        run(agents, 2, remaining=60.0)
        agent_tasks.open_task(
            AgentTask.OPTIMIZE_MODELS,
            title="Cheaper models",
            body="x",
            evidence={},
            suggested_actions=[],
            done_when="never",
        )
        bodies = [r["body"] for r in received(webhook_receiver)]
        assert [b["event"] for b in bodies] == [
            "task.created",
            "task.updated",
            "task.updated",
            "task.closed",
            "task.created",
        ]
        for body in bodies:
            validate(body)


@pytest.mark.django_db
class TestTheApi:
    def test_claim_then_complete_shows_the_task_done(self, agents, client, webhook_receiver):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        listed = client.get("/api/tasks/?state=open", headers=bearer("reader-token-123456")).json()
        assert [t["id"] for t in listed["tasks"]] == [task.pk]
        claimed = post(client, task.pk, "claim", operator(), agent="budget-bot")
        assert claimed.status_code == 200, claimed.content
        assert claimed.json()["task"]["state"] == "claimed" and claimed.json()["task"]["claimed_by"] == "budget-bot"
        done = post(client, task.pk, "complete", operator(), agent="budget-bot", note="topped up $50")
        assert done.status_code == 200
        shown = client.get("/api/tasks/", headers=bearer("reader-token-123456")).json()["tasks"]
        assert [(t["id"], t["state"], t["note"], t["claimed_by"]) for t in shown] == [
            (task.pk, "done", "topped up $50", "budget-bot")
        ]
        assert client.get("/api/tasks/?state=open", headers=operator()).json()["tasks"] == []
        assert [r["body"]["event"] for r in received(webhook_receiver)][-2:] == ["task.updated", "task.closed"]
        trail = AuditEntry.objects.order_by("created", "pk").values_list("actor", "action", "token_role", "address")
        assert list(trail) == [("budget-bot", "task_claim", "operator", "127.0.0.1"),
                               ("budget-bot", "task_complete", "operator", "127.0.0.1")]  # fmt: skip

    def test_a_second_claim_answers_409(self, agents, client):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        assert post(client, task.pk, "claim", operator(), agent="first").status_code == 200
        second = post(client, task.pk, "claim", operator(), agent="second")
        assert second.status_code == 409
        assert "claimed by first" in second.json()["error"]
        assert post(client, task.pk, "claim", operator(), agent="first").status_code == 200  # renewing is fine

    def test_an_expired_claim_is_open_again(self, agents, settings):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        now = START + timedelta(hours=1)
        agent_tasks.claim(task.pk, "slow-bot", by="op", now=now)
        later = now + timedelta(minutes=settings.AGENT_TASK_CLAIM_MINUTES + 1)
        assert [t.pk for t in agent_tasks.list_tasks("open", now=later)] == [task.pk]
        assert agent_tasks.task_document(task, now=later)["state"] == "open"
        agent_tasks.claim(task.pk, "fast-bot", by="op", now=later)
        with pytest.raises(agent_tasks.TaskConflict, match="claimed by fast-bot"):
            agent_tasks.claim(task.pk, "slow-bot", by="op", now=later)

    def test_a_closed_task_cannot_be_claimed_or_closed_again(self, agents, client):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        assert post(client, task.pk, "dismiss", operator(), note="handled by hand").status_code == 200
        for action in ("claim", "complete", "dismiss"):
            answer = post(client, task.pk, action, operator(), agent="bot")
            assert answer.status_code == 409 and "already dismissed" in answer.json()["error"]

    def test_no_such_task_is_404_and_bad_input_400(self, agents, client):
        assert post(client, 999, "claim", operator(), agent="bot").status_code == 404
        assert client.get("/api/tasks/?state=nope", headers=operator()).status_code == 400
        bad = client.post("/api/tasks/1/claim", "not json", content_type="application/json", headers=operator())
        assert bad.status_code == 400

    def test_writes_need_an_operator(self, agents, client, django_user_model):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        refused = post(client, task.pk, "claim", bearer("reader-token-123456"), agent="bot")
        assert refused.status_code == 403 and "operators" in refused.json()["error"].lower()
        assert post(client, task.pk, "claim", {}, agent="bot").status_code == 401
        client.force_login(django_user_model.objects.create_user("viewer", password="x" * 12))
        assert client.get("/api/tasks/").status_code == 200
        assert post(client, task.pk, "claim", {}, agent="bot").status_code == 403
        admin = django_user_model.objects.create_superuser("root", password="x" * 12)
        client.force_login(admin)
        answer = post(client, task.pk, "claim", {}, agent="")
        assert answer.status_code == 200 and answer.json()["task"]["claimed_by"] == "root"
        task.refresh_from_db()
        assert task.state == AgentTask.CLAIMED

    def test_a_session_post_needs_the_csrf_token(self, agents, django_user_model):
        from django.test import Client

        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(django_user_model.objects.create_superuser("root", password="x" * 12))
        assert post(browser, task.pk, "claim", {}, agent="me").status_code == 403
        task.refresh_from_db()
        assert task.state == AgentTask.OPEN


@pytest.mark.django_db(transaction=True)
def test_two_agents_claiming_at_once_one_wins(agents):
    run(agents, 0, remaining=4.5)
    task = AgentTask.objects.get()
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def claim(agent: str) -> None:
        from django.db import connection

        barrier.wait()
        try:
            agent_tasks.claim(task.pk, agent, by=agent)
            results[agent] = "won"
        except agent_tasks.TaskConflict:
            results[agent] = "409"
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == ["409", "won"]
    task.refresh_from_db()
    assert results[task.claimed_by] == "won"


@pytest.mark.django_db
def test_no_api_key_in_any_task_payload_or_log(agents, client, caplog, settings, webhook_receiver):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    caplog.set_level("DEBUG")
    run(agents, 0, remaining=4.5)
    task = AgentTask.objects.first()
    post(client, task.pk, "claim", operator(), agent="bot")
    post(client, task.pk, "complete", operator(), note=f"used {PROD_KEY} to check")  # pasted by mistake
    texts = [json.dumps(agent_tasks.task_document(t)) for t in AgentTask.objects.all()]
    texts += [d.body for d in TaskDelivery.objects.all()]
    texts += [json.dumps(r["body"]) for r in webhook_receiver.received]
    texts += [client.get("/api/tasks/", headers=operator()).content.decode(), caplog.text]
    for secret in (PROD_KEY, MANAGEMENT_KEY):
        assert [text for text in texts if secret in text] == []
    assert AgentTask.objects.exists() and webhook_receiver.received


def test_the_signature_is_githubs_hmac_sha256_of_the_raw_body():
    body = b'{"event":"task.created"}'
    assert agent_webhook.signature(body, "It's a Secret to Everybody") == (
        "sha256=" + hmac.new(b"It's a Secret to Everybody", body, hashlib.sha256).hexdigest()
    )


def test_every_condition_has_a_kind():
    assert {c for c, _ in Alert.CONDITION_CHOICES} <= set(agent_tasks.KIND_BY_CONDITION)
    assert set(agent_tasks.KIND_BY_CONDITION.values()) <= {k for k, _ in AgentTask.KIND_CHOICES}


@pytest.mark.django_db
class TestPagesAndAdmin:
    def test_the_alerts_page_shows_the_task_beside_its_alert_with_its_state_and_claimer(self, agents, admin_client):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        agent_tasks.claim(task.pk, "budget-bot", by="ops")
        html = admin_client.get("/alerts/").content.decode()
        row = html[html.index(f'id="alert-{task.alert_id}"') :]
        row = row[: row.index("</article>")]
        assert f'Agent task <a href="#task-{task.pk}">#{task.pk}</a> · Top up' in row
        assert 'data-state="claimed">claimed</span> by <span class="task-claimed-by">budget-bot</span>' in row
        table = html[html.index('id="agent-tasks"') :]
        assert f'id="task-{task.pk}"' in table and "budget-bot" in table

    def test_the_admin_lists_tasks_and_their_deliveries_read_only(self, agents, admin_client):
        run(agents, 0, remaining=4.5)
        task = AgentTask.objects.get()
        listing = admin_client.get("/admin/monitoring/agenttask/")
        assert listing.status_code == 200 and "Top up" in listing.content.decode()
        detail = admin_client.get(f"/admin/monitoring/agenttask/{task.pk}/change/").content.decode()
        assert "task.created" in detail and 'name="_save"' not in detail
        assert admin_client.get("/admin/monitoring/agenttask/add/").status_code == 403
        assert admin_client.get("/admin/monitoring/taskdelivery/").status_code == 200


def test_a_webhook_without_a_secret_is_a_system_check_warning(settings):
    from django.core import checks

    settings.AGENT_WEBHOOK_URL = "http://127.0.0.1:9/agents"
    settings.AGENT_WEBHOOK_SECRET = ""
    assert "monitoring.W019" in {m.id for m in checks.run_checks()}
    settings.AGENT_WEBHOOK_SECRET = "s3cret"
    assert "monitoring.W019" not in {m.id for m in checks.run_checks()}


@pytest.mark.django_db
def test_hostile_names_cannot_forge_a_line_of_the_task(agents, webhook_receiver):
    agents.set_failure("hostile-strings")  # NUL, newline, a forged log line and mentions in every label
    run(agents, 0, remaining=4.5)
    task = AgentTask.objects.get(alert__condition=Alert.BALANCE)
    assert "FORGED" in task.body  # the hostile name is there, shown...
    assert not any(line.startswith("2026-01-01") or "FORGED" in line.split(":")[0] for line in task.body.splitlines())
    assert "\x00" not in task.body and "\n" not in task.title and "\x1b" not in task.body  # ...on its own line only
    validate(received(webhook_receiver)[0]["body"])
