"""Alert conditions and the alert lifecycle (open, escalate, de-escalate, resolve)."""


def evaluate(statuses, now):
    """Evaluate every condition for the checked keys and sync Alert rows. Returns new events."""
    return []
