"""Budget periods: which period a request counts in, and when that period ends.

A tenant with a live Stripe subscription counts in its billing period,
"p<start>-<end>" in Unix seconds (`billing_period`, carried by its Limits);
any other tenant in the calendar month in UTC, "2026-11" (`current_period`).
`period_end` reads both.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

_PERIOD = re.compile(r"(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[0-2])")
_BILLING_PERIOD = re.compile(r"p(?P<start>[0-9]{1,12})-(?P<end>[0-9]{1,12})")


def current_period(now: datetime | None = None) -> str:
    """The budget period `now` (default: the current time) falls in, e.g. "2026-11"."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


@functools.lru_cache(maxsize=16)
def period_end(period: str) -> datetime:
    """When `period` ends: the first instant of the next one (UTC)."""
    billing = _BILLING_PERIOD.fullmatch(period)
    if billing is not None:
        return datetime.fromtimestamp(int(billing["end"]), UTC)
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise ValueError(f"not a budget period: {period!r}")
    year, month = int(match["year"]), int(match["month"])
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def billing_period(start: datetime, end: datetime, now: datetime | None = None) -> str:
    """The billing period from `start` to `end` (Stripe's current period) as a
    budget period. When `now` is already past `end` (the renewal's webhook is
    late), the period rolls forward by its own length, so budgets reset on
    time; the webhook then brings Stripe's exact dates."""
    moment = now or datetime.now(UTC)
    length = end - start
    if length.total_seconds() <= 0:
        raise ValueError(f"a billing period must end after it starts: {start} to {end}")
    while moment >= end:
        start, end = end, end + length
    return f"p{int(start.timestamp())}-{int(end.timestamp())}"


def billing_period_bounds(period: str) -> tuple[datetime, datetime] | None:
    """(start, end) of a billing period string; None for a calendar month."""
    match = _BILLING_PERIOD.fullmatch(period)
    if match is None:
        return None
    return datetime.fromtimestamp(int(match["start"]), UTC), datetime.fromtimestamp(int(match["end"]), UTC)
