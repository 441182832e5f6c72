"""What every command shares: a database that cannot be used is one line saying why and where, exit 3; a
mistyped argument is one line, exit 3; a reader that goes away (`| head`) ends the command quietly.

manage.py runs every command (ours, Django's, django-q2's) through `execute_cleanly`; commands with their own
output format (checkcredits --json) word the same line with `database_problem`. Our commands derive from
`MonitoringCommand`, whose parser refuses bad arguments with exit 3 instead of argparse's 2.
"""

import argparse
import math
import os
import sys

import django
from django.core.management import execute_from_command_line
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, OperationalError, connections

EXIT_DATABASE = 3  # UNKNOWN for a monitoring plugin: nothing could be checked or read
EXIT_ARGUMENTS = 3  # UNKNOWN too: a typo in a cron line must not page someone as CRITICAL (argparse's 2)
EXIT_CLOSED_PIPE = 141  # what a shell reports for a command stopped by a closed pipe (128 + SIGPIPE)


class ArgumentParser(CommandParser):
    """Django's parser, with an argument error said in one line (no usage block) and exit 3."""

    def error(self, message):
        if self.called_from_command_line:
            self.exit(EXIT_ARGUMENTS, f"Error: {message} (see {self.prog} --help)\n")
        raise CommandError(f"Error: {message}", returncode=EXIT_ARGUMENTS)


class MonitoringCommand(BaseCommand):
    """The base of creditmon's commands: argument errors exit 3 with one line."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = ArgumentParser  # Django builds its CommandParser itself; only `error` differs
        return parser


def argument_error(message: str) -> CommandError:
    """An argument refused after parsing (a value out of range): one line, exit 3 like a parse error."""
    return CommandError(message, returncode=EXIT_ARGUMENTS)


def usd_amount(text: str) -> float:
    """An argparse type for a dollar amount, refused in the words of the settings (OPENROUTER_CREDIT_THRESHOLD)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not valid: expected a plain number, e.g. 10")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid: expected a number of at least 0")
    return value


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
        sys.stdout.flush()  # a reader that went away shows here, not as "Exception ignored" at interpreter exit
    except BrokenPipeError:
        end_quietly(EXIT_CLOSED_PIPE)
    except SystemExit as exc:  # the command's own status (checkcredits' level) survives a closed pipe
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            end_quietly(exc.code)
        raise
    except DatabaseError as exc:
        message = database_problem(exc)
        if message is None or "--traceback" in argv:
            raise
        sys.stderr.write(f"Error: {message}\n")
        sys.exit(EXIT_DATABASE)


def end_quietly(code) -> None:
    """Stop writing to a pipe whose reader left (`credithistory | head`): no traceback, no flush error at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)
