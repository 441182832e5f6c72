"""People for the tests: an operator is a user put in the Operators group, as an administrator would."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

from monitoring import roles


def operators_group() -> Group:
    """The group the migrations create (made again here after a transactional test emptied the tables)."""
    group, _ = Group.objects.get_or_create(name=roles.OPERATORS)
    app_label, codename = roles.OPERATE.split(".")
    group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


def make_operator(user):
    user.groups.add(operators_group())
    return user
