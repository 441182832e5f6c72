"""Alert conditions and the alert lifecycle (open, escalate, de-escalate, resolve)."""

from __future__ import annotations

from dataclasses import dataclass

from .models import ApiKey


@dataclass
class Condition:
    """One evaluated condition. Level OK means "fine now": an open alert for it resolves."""

    key: ApiKey | None
    condition: str  # one of Alert.CONDITION_CHOICES
    level: int  # models.Level
    message: str
    value: float | None = None
    subject: str = ""  # e.g. the model of a model spike; "" for most conditions


def evaluate(statuses, now):
    """Evaluate every condition for the checked keys and sync Alert rows. Returns new events."""
    return []
