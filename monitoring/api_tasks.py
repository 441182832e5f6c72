"""Agent tasks over HTTP: `GET /api/tasks/?state=` and `POST /api/tasks/<id>/claim|complete|dismiss`.

Reading takes a session or `Bearer API_TOKEN` (or the operator token); acting takes an operator
(`roles`): the Operators group or a superuser in a session, or `Bearer API_OPERATOR_TOKEN`. A POST with a
session needs Django's CSRF token like any form; a bearer token is the agent's credential and needs none.
Answers: 404 for no such task, 409 for a conflicting claim or a closed task, 403 for a viewer.
"""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import agent_tasks, audit, roles
from .api import bearer_token

ACTIONS = ("claim", "complete", "dismiss")


def unauthorized(message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="creditmon"'
    return response


def role_of(request: HttpRequest) -> tuple[str | None, str, JsonResponse | None]:
    """(role, who, error): the bearer token's role, else the session user's; an error answer when neither."""
    token = bearer_token(request)
    if token is not None:
        role = roles.token_role(token)
        if role is None:
            return None, "", unauthorized("invalid token")
        return role, f"{role} token", None
    user = request.user
    if not user.is_authenticated:
        return None, "", unauthorized("log in or send Authorization: Bearer <API_TOKEN>")
    return (roles.OPERATOR if roles.can_operate(user) else roles.VIEWER), user.get_username(), None


@login_not_required
@require_GET
@never_cache
def task_list(request: HttpRequest) -> JsonResponse:
    _, _, error = role_of(request)
    if error is not None:
        return error
    now = timezone.now()
    try:
        tasks = agent_tasks.list_tasks(request.GET.get("state") or None, now)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"schema": agent_tasks.SCHEMA, "tasks": [agent_tasks.task_document(t, now) for t in tasks]})


def _csrf_failure(request: HttpRequest) -> JsonResponse | None:
    """A session's POST passes Django's CSRF check as a form would (the view itself is exempt for tokens)."""
    rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
    if rejected is not None:
        message = "CSRF check failed: send the csrftoken cookie's value as X-CSRFToken"
        return JsonResponse({"error": message}, status=403)
    return None


@login_not_required
@csrf_exempt
@require_POST
@never_cache
def task_action(request: HttpRequest, task_id: int, action: str) -> JsonResponse:
    role, who, error = role_of(request)
    if error is not None:
        return error
    if bearer_token(request) is None:
        failure = _csrf_failure(request)
        if failure is not None:
            return failure
    if role != roles.OPERATOR:
        return JsonResponse(
            {"error": f"Only operators may {action} tasks: ask an administrator for the Operators group, "
             "or use API_OPERATOR_TOKEN."},
            status=403,
        )  # fmt: skip
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": 'The body must be JSON, e.g. {"agent": "budget-bot", "note": "..."}'}, status=400)
    if not isinstance(data, dict):
        return JsonResponse({"error": 'The body must be a JSON object, e.g. {"agent": "budget-bot"}'}, status=400)
    agent, note = str(data.get("agent") or "").strip(), str(data.get("note") or "")
    try:
        if action == "claim":
            task = agent_tasks.claim(task_id, agent or who, by=who)
        elif action == "complete":
            task = agent_tasks.complete(task_id, note, by=agent or who)
        else:
            task = agent_tasks.dismiss(task_id, note, by=agent or who)
    except agent_tasks.TaskNotFound as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    except agent_tasks.TaskConflict as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    token_role = role if bearer_token(request) is not None else None
    actor = request.user if token_role is None else agent or who
    audit.record(actor, audit.TASK_ACTIONS[action], f"task {task.pk}: {task.title}", request, token_role, note)
    return JsonResponse({"task": agent_tasks.task_document(task)})
