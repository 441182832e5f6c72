"""Who may do what. Viewers read every page, export and the API; operators may also act.

Acting means: acknowledge, snooze and their undos, Check now, Send test, and agent-task actions
(claim, complete, dismiss). Superusers may do everything. A signed-in user in neither group is a
viewer. Operators hold the permission `monitoring.operate` (given to the group by the migrations), so the
admin can also grant it to one user. Bearer tokens: `API_TOKEN` reads, `API_OPERATOR_TOKEN` may also act.
"""

from __future__ import annotations

import hmac

from django.conf import settings

VIEWERS = "Viewers"
OPERATORS = "Operators"
VIEWER, OPERATOR = "viewer", "operator"
# The permission the Operators group holds (migration 0011); the admin may also grant it to one user.
OPERATE = "monitoring.operate"
REFUSED = "{action} needs the Operators role: you can read every page, but only an operator may act. Ask an "
REFUSED += "administrator to add you to the Operators group."


def can_operate(user) -> bool:
    """A signed-in superuser, a member of Operators, or a user granted the permission itself."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.has_perm(OPERATE)  # True for an active superuser; the group's permission for its members


def refusal(action: str) -> str:
    """The one sentence a refused action answers with (403)."""
    return REFUSED.format(action=action)


def _same(given: str, expected: str) -> bool:
    return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())


def token_role(token: str | None) -> str | None:
    """The role a bearer token carries: OPERATOR, VIEWER, or None for no or an unknown token."""
    if not token:
        return None
    if _same(token, getattr(settings, "API_OPERATOR_TOKEN", "")):
        return OPERATOR
    if _same(token, settings.API_TOKEN):
        return VIEWER
    return None
