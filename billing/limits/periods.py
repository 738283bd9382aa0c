"""Budget periods: which period a request counts in, and when that period ends.

A period is the calendar month in UTC for now. The billing issue will switch
it to the Stripe billing period: `current_period` and `period_end` are the
only two places that know, and they change together.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

_PERIOD = re.compile(r"(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[0-2])")


def current_period(now: datetime | None = None) -> str:
    """The budget period `now` (default: the current time) falls in, e.g. "2026-11"."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


@functools.lru_cache(maxsize=16)
def period_end(period: str) -> datetime:
    """When `period` ends: the first instant of the next one (UTC)."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise ValueError(f"not a budget period: {period!r}")
    year, month = int(match["year"]), int(match["month"])
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
