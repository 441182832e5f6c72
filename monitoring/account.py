"""The account-wide view with a management key: every key (GET /keys) and spend by model (GET /activity)."""


def check_listed_keys(now, checked_hashes, account, account_note, threshold=None):
    return []


def sync_activity(now):
    return 0
