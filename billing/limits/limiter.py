"""Admission of /v1 requests against rate limits and budgets, shared by every
gateway process through Redis.

Guarantees (each admit and each reconcile is one atomic Lua script, see
scripts.py, on the Redis server's clock):

- Rate limits are exact across processes: from rest, a key with a limit of N
  requests a minute is admitted exactly N in a burst, then one more each
  60/N s, however many processes ask; N tokens a minute likewise, weighted by
  each request's estimated tokens (a request estimated above N is admitted
  only into an empty bucket and owes the rest once reconciled). The key's and
  the tenant's limits apply together. A changed limit applies at once.
- A request is admitted only if every limit and budget has room, and then
  consumes all of them at once; a denied request consumes nothing.
- Budgets: a request is admitted only if spent + reserved + its estimate
  stays within every cap of the period, and its estimate stays reserved until
  reconciled. So spent <= cap + the sum of (actual - estimate) over the
  admitted requests that used more than estimated: one request's overage when
  one overruns, nothing when estimates are upper bounds (prompt tokens plus
  max_tokens at the model's price). Several overruns at once add up: without
  an upper bound on each request's cost, no admission rule can stop that.
- Retry-After works: for a rate limit it is the wait (whole seconds, rounded
  up) after which the same request would be admitted were nothing else
  admitted meanwhile; for a budget, the seconds until the period ends and the
  counters start again.
- Retries count once: admit and reconcile name the reservation, so a script
  run twice (redis-py retries commands after a lost connection) reserves and
  reconciles once.
- Fail closed: when Redis does not answer within `timeout_seconds` (refused,
  reset, timed out) the call raises LimiterUnavailableError and the gateway
  answers 503 with Retry-After. The client reconnects by itself on the next
  call once Redis is back. A reservation whose admit reply was lost stays
  reserved until its period ends, erring towards refusing.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis.exceptions
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from aiaas.observability.metrics import LIMITER_DECISIONS, series
from aiaas.redis_keys import tenant_key
from billing.limits import scripts
from billing.limits.periods import period_end
from billing.limits.resolution import MAX_EXACT, Limits

# Admission.reason by the script's reason number (1-based).
REASONS = (
    "key_requests",
    "key_tokens",
    "tenant_requests",
    "tenant_tokens",
    "tenant_token_budget",
    "tenant_spend_budget",
    "key_token_budget",
    "key_spend_budget",
    "tenant_request_budget",
)
# Budget counters outlive their period by this much, for late reconciles and inspection.
BUDGET_RETENTION = timedelta(days=7)
# OSError covers refused and reset sockets and the builtin TimeoutError of asyncio.timeout.
REDIS_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class LimiterUnavailableError(Exception):
    """Redis did not answer: nothing can be admitted (fail closed), so the
    gateway answers 503 with Retry-After `retry_after_seconds`."""

    retry_after_seconds = 2


@dataclass(frozen=True)
class Reservation:
    """What an admitted request holds until it is reconciled: its estimate, in
    the budget counters of `period` and in the token buckets whose limits it
    was admitted under."""

    id: str
    tenant_id: int
    key_id: int
    period: str
    estimated_tokens: int
    estimated_usd_micros: int
    key_tpm: int
    tenant_tpm: int
    admitted_at_ms: int  # Redis server time


@dataclass(frozen=True)
class Hold:
    """Tokens and USD micros held in a reservation's budgets."""

    tokens: int = 0
    usd_micros: int = 0

    def __add__(self, other: Hold) -> Hold:
        return Hold(self.tokens + other.tokens, self.usd_micros + other.usd_micros)


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reservation: Reservation | None
    retry_after_seconds: int | None  # at least 1 when denied
    reason: str | None  # one of REASONS when denied
    headers: dict[str, str]  # OpenAI's x-ratelimit-* headers, the tighter of key and tenant


@dataclass(frozen=True)
class BudgetUsage:
    """A period's counters: reserved is what admitted requests hold until reconciled."""

    spent_tokens: int
    reserved_tokens: int
    spent_usd_micros: int
    reserved_usd_micros: int


class Limiter:
    """Rate limits and budgets of every tenant and key, on one Redis (or one
    Redis Cluster: all of a tenant's keys share a hash slot)."""

    def __init__(self, redis: Redis, *, timeout_seconds: float = 1.0) -> None:
        self._redis = redis
        self._timeout_seconds = timeout_seconds
        self._admit = redis.register_script(scripts.ADMIT)
        self._reconcile = redis.register_script(scripts.RECONCILE)
        self._extend = redis.register_script(scripts.EXTEND)

    async def admit(
        self,
        *,
        tenant_id: int,
        key_id: int,
        limits: Limits,
        estimated_tokens: int,
        estimated_usd_micros: int,
        period: str,
    ) -> Admission:
        """Admit one request costing at most about the estimates, or say why not.

        Budgets count in `limits.period` when the tenant has a billing period
        of its own, else in `period` (the calendar month).
        Raises LimiterUnavailableError when Redis does not answer.
        """
        _check_amounts(estimated_tokens, estimated_usd_micros)
        period = limits.period or period
        end = period_end(period)
        reservation_id = uuid.uuid4().hex
        keys = _rate_keys(tenant_id, key_id) + _budget_keys(tenant_id, key_id, period)
        args: tuple[int | str, ...] = (
            *_rates(limits),
            estimated_tokens,
            estimated_usd_micros,
            *_caps(limits),
            _expiry(end),
            reservation_id,
            -1 if limits.tenant_period_requests is None else limits.tenant_period_requests,
        )
        try:
            answer = await self._run(self._admit, keys, args)
        except LimiterUnavailableError:
            series(LIMITER_DECISIONS, "rejected", "limiter_unavailable").inc()
            raise
        allowed, reason, wait_ms, now_ms, *buckets = (int(value) for value in answer)
        headers = _headers(_rates(limits), buckets)
        if not allowed:
            retry_after = _retry_after_seconds(wait_ms, now_ms, end)
            series(LIMITER_DECISIONS, "rejected", REASONS[reason - 1]).inc()
            return Admission(False, None, retry_after, REASONS[reason - 1], headers)
        series(LIMITER_DECISIONS, "admitted", "none").inc()
        reservation = Reservation(
            id=reservation_id,
            tenant_id=tenant_id,
            key_id=key_id,
            period=period,
            estimated_tokens=estimated_tokens,
            estimated_usd_micros=estimated_usd_micros,
            key_tpm=limits.key_tpm,
            tenant_tpm=limits.tenant_tpm,
            admitted_at_ms=now_ms,
        )
        return Admission(True, reservation, None, None, headers)

    async def extend(self, reservation: Reservation, limits: Limits, hold: Hold, number: int) -> bool:
        """Hold `hold` more in the reservation's budgets (extension `number`, from
        1, so a retried call holds once), or False when a cap has no room for it.
        What a request may spend beyond its admission (another attempt that will
        be billed) is held before it is spent, so budgets stay upper bounds.

        Raises LimiterUnavailableError when Redis does not answer.
        """
        _check_amounts(hold.tokens, hold.usd_micros)
        args: tuple[int | str, ...] = (
            hold.tokens,
            hold.usd_micros,
            *_caps(limits),
            _expiry(period_end(reservation.period)),
            reservation.id,
            number,
        )
        keys = _budget_keys(reservation.tenant_id, reservation.key_id, reservation.period)
        return int(await self._run(self._extend, keys, args)) == 1

    async def reconcile(
        self,
        reservation: Reservation,
        *,
        actual_tokens: int,
        actual_usd_micros: int,
        extended: Hold | None = None,
    ) -> None:
        """Replace the reservation's estimates by the actual usage: in the budget
        counters, and in both token buckets by the difference (tokens estimated
        but unused are given back; used beyond the estimate, owed). Reconciling
        a reservation twice counts once; a request that never reached the
        provider is reconciled with zeros.

        Raises LimiterUnavailableError when Redis does not answer.
        """
        _check_amounts(actual_tokens, actual_usd_micros)
        _, key_tpm, _, tenant_tpm = _rate_keys(reservation.tenant_id, reservation.key_id)
        keys = (
            key_tpm,
            tenant_tpm,
            *_budget_keys(reservation.tenant_id, reservation.key_id, reservation.period),
        )
        args = (
            reservation.key_tpm,
            reservation.tenant_tpm,
            reservation.id,
            reservation.estimated_tokens,
            reservation.estimated_usd_micros,
            actual_tokens,
            actual_usd_micros,
            _expiry(period_end(reservation.period)),
            reservation.estimated_tokens + (extended.tokens if extended else 0),
            reservation.estimated_usd_micros + (extended.usd_micros if extended else 0),
        )
        await self._run(self._reconcile, keys, args)

    async def usage(self, *, tenant_id: int, period: str, key_id: int | None = None) -> BudgetUsage:
        """The period's budget counters of the tenant, or of one of its keys."""
        owner = () if key_id is None else (f"k{key_id}",)
        fields = ("spent_tokens", "reserved_tokens", "spent_micros", "reserved_micros")
        try:
            async with asyncio.timeout(self._timeout_seconds):
                values = await self._redis.hmget(
                    tenant_key("limits", tenant_id, *owner, "budget", period), fields
                )
        except REDIS_UNAVAILABLE as error:
            raise LimiterUnavailableError(f"Redis unavailable: {error!r}") from error
        return BudgetUsage(*(int(value or 0) for value in values))

    async def _run(self, script: AsyncScript, keys: tuple[str, ...], args: tuple[int | str, ...]) -> Any:
        try:
            async with asyncio.timeout(self._timeout_seconds):
                return await script(keys=keys, args=args)
        except REDIS_UNAVAILABLE as error:
            raise LimiterUnavailableError(f"Redis unavailable: {error!r}") from error


def format_duration(milliseconds: int) -> str:
    """A duration as OpenAI's x-ratelimit-reset-* headers (Go's time.Duration) write it:
    "0s", "20ms", "1s", "17.5s", "6m0s", "1h2m3.004s"."""
    if milliseconds <= 0:
        return "0s"
    if milliseconds < 1000:
        return f"{milliseconds}ms"
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, fraction = divmod(rest, 1000)
    text = f"{seconds}" + (f".{fraction:03d}".rstrip("0") if fraction else "") + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    return f"{hours}h{text}" if hours else text


def _rate_keys(tenant_id: int, key_id: int) -> tuple[str, str, str, str]:
    """Key rpm, key tpm, tenant rpm, tenant tpm: the order of the scripts' KEYS.
    All carry the tenant's hash tag, so one script may touch them all."""
    key = f"k{key_id}"
    return (
        tenant_key("limits", tenant_id, key, "rpm"),
        tenant_key("limits", tenant_id, key, "tpm"),
        tenant_key("limits", tenant_id, "rpm"),
        tenant_key("limits", tenant_id, "tpm"),
    )


def _budget_keys(tenant_id: int, key_id: int, period: str) -> tuple[str, str]:
    return (
        tenant_key("limits", tenant_id, "budget", period),
        tenant_key("limits", tenant_id, f"k{key_id}", "budget", period),
    )


def _caps(limits: Limits) -> tuple[int, int, int, int]:
    """The tenant's token and micros caps, then the key's, as the scripts take them (-1: none)."""
    caps = (
        limits.tenant_monthly_tokens,
        limits.tenant_monthly_usd_micros,
        limits.key_monthly_tokens,
        limits.key_monthly_usd_micros,
    )
    tenant_tokens, tenant_micros, key_tokens, key_micros = (-1 if cap is None else cap for cap in caps)
    return tenant_tokens, tenant_micros, key_tokens, key_micros


def _rates(limits: Limits) -> tuple[int, int, int, int]:
    return limits.key_rpm, limits.key_tpm, limits.tenant_rpm, limits.tenant_tpm


def _expiry(end: datetime) -> int:
    return int((end + BUDGET_RETENTION).timestamp())


def _check_amounts(tokens: int, usd_micros: int) -> None:
    if not (0 <= tokens <= MAX_EXACT and 0 <= usd_micros <= MAX_EXACT):
        raise ValueError(f"token and USD-micro amounts must be from 0 to {MAX_EXACT}")


def _retry_after_seconds(wait_ms: int, now_ms: int, end: datetime) -> int:
    if wait_ms == scripts.BUDGET_WAIT:
        wait_ms = int(end.timestamp() * 1000) - now_ms
    return max(1, math.ceil(wait_ms / 1000))


def _headers(rates: tuple[int, int, int, int], buckets: list[int]) -> dict[str, str]:
    """OpenAI's headers for requests and tokens, each from whichever of the
    key's and the tenant's buckets has less room (the key's on a tie)."""
    states = [(buckets[2 * i], rates[i], buckets[2 * i + 1]) for i in range(4)]
    headers: dict[str, str] = {}
    for kind, key_state, tenant_state in (
        ("requests", states[scripts.KEY_REQUESTS], states[scripts.TENANT_REQUESTS]),
        ("tokens", states[scripts.KEY_TOKENS], states[scripts.TENANT_TOKENS]),
    ):
        remaining, limit, reset_ms = min(key_state, tenant_state, key=lambda state: state[:2])
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        headers[f"x-ratelimit-reset-{kind}"] = format_duration(reset_ms)
    return headers
