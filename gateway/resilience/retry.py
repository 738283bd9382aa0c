"""Retries with exponential backoff and full jitter that honour Retry-After, and
the attempt budget one request shares across retries and fallbacks."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` attempts; backoff capped at `max_delay`; a
    Retry-After longer than `max_retry_after` means give up on this provider."""

    max_attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0
    max_retry_after: float = 10.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date.

    None when the header is absent, unparseable, negative or a date already
    past (a past date says more about clock skew than about the provider).
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # RFC 9110 dates are GMT; "-0000" parses as naive.
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return seconds if seconds >= 0 else None


def retry_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rng: random.Random | None = None
) -> float | None:
    """Seconds to wait before retrying after failed attempt number `attempt`
    (1-based), or None to stop: attempts are exhausted or the provider asks
    for a longer wait than `max_retry_after`.

    A Retry-After is waited exactly, never less; otherwise the delay is drawn
    uniformly from [0, min(max_delay, base_delay * 2 ** (attempt - 1))] so that
    clients failing together do not retry together.
    """
    if attempt >= policy.max_attempts:
        return None
    if retry_after is not None:
        return retry_after if retry_after <= policy.max_retry_after else None
    ceiling = min(policy.max_delay, policy.base_delay * math.pow(2, attempt - 1))
    return (rng or random).uniform(0, ceiling)


class AttemptBudget:
    """The attempts one request may make across every layer (retries and
    fallbacks together). One per request; not shared between tasks that run
    in parallel threads (asyncio tasks of one loop may share it)."""

    def __init__(self, max_attempts: int = 3) -> None:
        self._max_attempts = max_attempts
        self._used = 0

    def take(self) -> bool:
        """True, counting the attempt, if one more attempt may start."""
        if self._used >= self._max_attempts:
            return False
        self._used += 1
        return True

    @property
    def used(self) -> int:
        return self._used

    @property
    def remaining(self) -> int:
        return self._max_attempts - self._used
