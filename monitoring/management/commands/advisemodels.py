"""python manage.py advisemodels: what each used model cost, and what the same tokens would cost elsewhere."""

import json

from django.utils import timezone

from monitoring import advisor, catalogue
from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand, argument_error

MAX_DAYS = 90  # OpenRouter serves 30 days of activity; the stored copy goes back as far as Financial shows
TEXT_REFUSED = 5  # the text names the cheapest few models that are not like-for-like; --json has more


class Command(MonitoringCommand):
    requires_system_checks = []  # keep script output clean; `manage.py check` reports configuration
    help = "Per used model: spend, tokens, price paid, and the cost of the same tokens on like-for-like models."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30, help="the window in days (default 30)")
        parser.add_argument("--model", default=None, help="only this model id, e.g. openai/gpt-4.1")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        console_logging(options["verbosity"])
        days = options["days"]
        if not 1 <= days <= MAX_DAYS:
            raise argument_error(f"--days must be a whole number from 1 to {MAX_DAYS}")
        now = timezone.now()
        if catalogue.is_stale(now):
            fetch = catalogue.refresh(now)  # the advice says how old its prices are if this failed
            if not fetch.ok and not options["json"]:
                self.stderr.write(f"Model catalogue not refreshed: {fetch.error}")
        answer = advisor.advice(now, days, options["model"] or None)
        if options["json"]:
            self.stdout.write(json.dumps(answer, indent=2))
            return
        self.stdout.write(format_advice(answer, options["model"]))


def _usd(value) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def format_advice(answer: dict, model: str | None = None) -> str:
    lines = [f"Model costs, last {answer['window_days']} days ({answer['window_start']} to {answer['window_end']})"]
    if answer["catalogue_fetched_at"]:
        fetched, age = answer["catalogue_fetched_at"][:16], answer["catalogue_age_hours"]
        lines.append(f"List prices fetched {fetched} ({age} h old)")
    if answer["catalogue_note"]:
        lines.append(f"Note: {answer['catalogue_note']}")
    if not answer["models"]:
        what = f"on {model} " if model else ""
        lines.append(
            f"\nNo spend {what}in the last {answer['window_days']} days: per-model activity needs "
            "OPENROUTER_MANAGEMENT_KEY and a scheduled run (python manage.py monitorcredits)."
        )
    for entry in answer["models"]:
        lines.append("")
        lines += model_block(entry)
    return "\n".join(lines) + "\n"


def model_block(entry: dict) -> list[str]:
    lines = [f"{entry['model']}: {_usd(entry['spend'])} spent, {entry['requests']:,} requests"]
    lines.append(
        f"  tokens: {entry['prompt_tokens']:,} prompt ({entry['cached_tokens']:,} cached), "
        f"{entry['completion_tokens']:,} completion, {entry['reasoning_tokens']:,} reasoning"
    )
    if entry.get("note"):
        lines.append(f"  {entry['note']}")
    if entry.get("list_prompt_price") is not None:
        paid = (entry.get("effective_prompt_price"), entry.get("effective_completion_price"))
        paid_text = " / ".join(_usd(v) for v in paid) if paid[0] is not None else "unknown"
        lines.append(
            f"  per million tokens (prompt / completion): paid {paid_text}, "
            f"list {_usd(entry['list_prompt_price'])} / {_usd(entry['list_completion_price'])}"
        )
        for note in entry.get("price_notes") or []:
            lines.append(f"  why different: {note}")
    if entry["expiration_date"]:
        when, days = entry["expiration_date"], entry["expires_in_days"]
        lines.append(f"  GOING AWAY: may be removed after {when} (in {days} days)")
    if entry["candidates"]:
        lines.append("  like-for-like candidates, the same tokens at list price:")
        for c in entry["candidates"]:
            if c["saving"] is not None and c["saving"] < 0:
                verdict = f"costs {_usd(-c['saving'])} more"
            else:
                verdict = f"saves {_usd(c['saving'])} ({c['saving_percent']}%)"
            lines.append(f"    {c['model']}: {_usd(c['cost'])}, {verdict}  {c['url']}")
        lines.append(f"    matched: {', '.join(entry['candidates'][0]['matched'])}")
    elif entry["in_catalogue"]:
        lines.append("  no like-for-like candidate in the catalogue")
    refused = entry["not_like_for_like"]
    if refused:
        lines.append("  cheaper, but not like-for-like:")
    for r in refused[:TEXT_REFUSED]:
        lines.append(f"    {r['model']} ({_usd(r['cost'])}): {r['reason']}")
    if len(refused) > TEXT_REFUSED:
        lines.append(f"    and {len(refused) - TEXT_REFUSED} more (--json lists them)")
    return lines
