"""Notification delivery through Apprise; every attempt is a Delivery row."""


def deliver_pending(now):
    return []
