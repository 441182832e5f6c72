"""What every command shares: a database that cannot be used is one line saying why and where, exit 3.

manage.py runs every command (ours, Django's, django-q2's) through `execute_cleanly`; commands with their own
output format (checkcredits --json) word the same line with `database_problem`.
"""

import sys

import django
from django.core.management import execute_from_command_line
from django.db import DatabaseError, OperationalError, connections

EXIT_DATABASE = 3  # UNKNOWN for a monitoring plugin: nothing could be checked or read
MIGRATE_HINT = "the table is missing: run `python manage.py migrate`"


def database_address(alias: str = "default") -> str:
    """Where the database is, for a person: engine, user, host, port and name; never the password."""
    db = connections[alias].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite file {db['NAME']}"
    user = f"{db['USER']}@" if db.get("USER") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"{connections[alias].display_name} {user}{db.get('HOST') or 'localhost'}{port}/{db['NAME']}"


def is_missing_table(exc: BaseException) -> bool:
    """SQLite's "no such table", PostgreSQL's undefined_table (42P01)."""
    return getattr(exc.__cause__, "sqlstate", None) == "42P01" or "no such table" in str(exc)


def database_problem(exc: BaseException, alias: str = "default") -> str | None:
    """One line for a database that is missing, unreachable or failing; None for other errors (bugs keep a
    traceback)."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if is_missing_table(exc):
        return f"{MIGRATE_HINT} ({reason})"
    if not isinstance(exc, OperationalError):
        return None
    # psycopg says 'connection failed: connection to server at "h", port 1 failed: Connection refused'.
    reason = " ".join(reason.rsplit("failed: ", 1)[-1].split())
    if connections[alias].connection is None:  # the connection itself could not be opened
        return f"cannot connect to the database ({database_address(alias)}): {reason}"
    return f"the database ({database_address(alias)}) failed: {reason}"


def execute_cleanly(argv: list[str]) -> None:
    """Django's execute_from_command_line, with a database problem said in one line (exit 3), no traceback."""
    try:
        if argv[1:2] == ["qcluster"]:  # its worker processes would each print a traceback: try once, up front
            django.setup()
            connections["default"].ensure_connection()
            connections["default"].close()
        execute_from_command_line(argv)
    except DatabaseError as exc:
        message = database_problem(exc)
        if message is None or "--traceback" in argv:
            raise
        sys.stderr.write(f"Error: {message}\n")
        sys.exit(EXIT_DATABASE)
