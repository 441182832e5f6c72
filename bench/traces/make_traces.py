"""Write the shipped spend traces (deterministic: seeded noise), one CSV each, a row every 10 minutes.

    python bench/traces/make_traces.py

Each trace follows one key; `usage` is its cumulative spend. Spend arrives in bursts (every 10-minute
step draws from a lognormal around the rate), stops at the money left (OpenRouter refuses requests),
and a trace with total_credits/total_usage replays as an account with a management key.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=10)
STEPS_PER_DAY = 144
HEADER = ["timestamp", "usage", "limit", "limit_remaining", "total_credits", "total_usage"]


def noisy(rng: random.Random, per_day: float, sigma: float = 0.6) -> float:
    """One 10-minute step's spend: bursty, averaging `per_day` / 144."""
    mean = per_day / STEPS_PER_DAY
    return mean * rng.lognormvariate(-sigma * sigma / 2, sigma)


def write(name: str, days: float, rate, *, usage: float, limit: float | None = None, credits: float | None = None,
          other_usage: float = 0.0, topups: dict[int, float] | None = None, seed: int = 1,
          sigma=lambda d: 0.6, usage_at: tuple[int, float] | None = None) -> None:  # fmt: skip
    """`rate(day_float, weekday)` gives $/day and `sigma(day_float)` its burstiness; `credits`: account mode with
    this total_credits at the start; `usage_at`: (step, usage) sets the usage exactly at that step."""
    rng = random.Random(seed)
    steps = int(days * STEPS_PER_DAY) + 1
    spends = [0.0] + [
        noisy(rng, rate(n / STEPS_PER_DAY, (START + n * STEP).weekday()), sigma(n / STEPS_PER_DAY))
        for n in range(1, steps)
    ]
    if usage_at:  # start where the spend drawn up to that step lands exactly on the wanted usage
        usage = usage_at[1] - sum(spends[1 : usage_at[0] + 1])
    topups = dict(topups or {})
    with (HERE / f"{name}.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(HEADER)
        for step in range(steps):
            at = START + step * STEP
            if step in topups:
                credits = (credits or 0.0) + topups.pop(step)
            room = [spends[step]]
            if limit is not None:
                room.append(limit - usage)
            if credits is not None:
                room.append(credits - other_usage - usage)
            usage += max(0.0, min(room))
            row = [at.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{usage:.6f}"]
            row += [f"{limit:.2f}", f"{max(limit - usage, 0.0):.6f}"] if limit is not None else ["", ""]
            row += [f"{credits:.2f}", f"{other_usage + usage:.6f}"] if credits is not None else ["", ""]
            out.writerow(row)


def main() -> None:
    # $3.20/day, $45.23 left under the key's $100 cap: out after about 14 days.
    write("steady", 16, lambda d, wd: 3.2, usage=54.77, limit=100.0, seed=1)
    # Weekdays $5/day, weekends $0.80: a 7-day mean of $3.80, out after about 15 days.
    write("weekday", 18, lambda d, wd: 5.0 if wd < 5 else 0.8, usage=40.0, limit=100.0, seed=2)
    # Slow creep: $2/day growing 6% a day, $90 left: out after about 19 days.
    write("creep", 26, lambda d, wd: 2.0 * math.exp(0.06 * d), usage=10.0, limit=100.0, seed=3)
    # An account (management key) at $4/day with $40, a $60 purchase on day 2: out after about 25 days.
    write("topup", 27, lambda d, wd: 4.0, usage=0.0, credits=140.0, other_usage=100.0,
          topups={2 * STEPS_PER_DAY: 60.0}, seed=4)  # fmt: skip
    # $3/day for 6.5 days, then at 13:00 a loop spends a steady $60/day with exactly $45 left under the $100 cap:
    # 18 hours to the end. A loop spends evenly, so its bursts are small.
    change = 6.5 + 1 / 24
    write("runaway", 8, lambda d, wd: 3.0 if d <= change else 60.0, usage=35.5, limit=100.0, credits=400.0,
          other_usage=50.0, seed=5, sigma=lambda d: 0.6 if d <= change else 0.15,
          usage_at=(round(change * STEPS_PER_DAY), 55.0))  # fmt: skip
    # The same at $240/day: 4.5 hours to the end.
    write("fast_runaway", 8, lambda d, wd: 3.0 if d <= change else 240.0, usage=35.5, limit=100.0, credits=400.0,
          other_usage=50.0, seed=6, sigma=lambda d: 0.6 if d <= change else 0.15,
          usage_at=(round(change * STEPS_PER_DAY), 55.0))  # fmt: skip
    # A quiet account: $500 at $3.20/day for 30 days, never near the end.
    write("quiet", 30, lambda d, wd: 3.2, usage=0.0, credits=600.0, other_usage=100.0, seed=7)
    # A daily $10 guardrail spent every afternoon (about 14:40 at $1.50/h from 08:00) with $880 in the account.
    write_guardrail("guardrail", 7, limit=10.0, per_hour=1.5, start_hour=8, seed=8)


def write_guardrail(name: str, days: int, *, limit: float, per_hour: float, start_hour: int, seed: int) -> None:
    """A daily guardrail of `limit` on a key spending `per_hour` (bursty) from `start_hour` UTC each day: spent
    every afternoon (requests refused until midnight) while the account holds plenty."""
    rng = random.Random(seed)
    credits, other_usage, usage = 1000.0, 100.0, 20.0
    with (HERE / f"{name}.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(HEADER + ["budget_scope", "budget_limit", "budget_spend", "budget_reset"])
        today = None
        for step in range(days * STEPS_PER_DAY + 1):
            at = START + step * STEP
            if at.date() != today:
                today, spend = at.date(), 0.0  # the guardrail resets at 00:00 UTC
            if step and at.hour >= start_hour:
                spend_now = min(noisy(rng, per_hour * 24), limit - spend)  # refused once the guardrail is spent
                spend += spend_now
                usage += spend_now
            row = [at.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{usage:.6f}", "", ""]
            row += [f"{credits:.2f}", f"{other_usage + usage:.6f}", "api_key", f"{limit:.2f}", f"{spend:.6f}", "daily"]
            out.writerow(row)


if __name__ == "__main__":
    main()
