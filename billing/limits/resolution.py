"""The limits that apply to one request: the tenant's plan, then the key's overrides."""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # at run time this module needs no Django (the limiter runs in worker processes)
    from billing.models import Plan
    from tenants.models import ApiKey

MICROS_PER_USD = 1_000_000
# The scripts count in Lua numbers (doubles): integers are exact below 2^53.
MAX_EXACT = 2**53 - 1
MAX_RATE = 2**31 - 1  # a PositiveIntegerField's range; keeps the buckets' units below 2^53

RATE_FIELDS = ("key_rpm", "key_tpm", "tenant_rpm", "tenant_tpm")


@dataclass(frozen=True)
class Limits:
    """Per-minute rates (each at least 1) and per-period caps (None: no cap)."""

    key_rpm: int
    key_tpm: int
    tenant_rpm: int
    tenant_tpm: int
    tenant_monthly_tokens: int | None
    tenant_monthly_usd_micros: int | None
    key_monthly_tokens: int | None
    key_monthly_usd_micros: int | None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in RATE_FIELDS and not 1 <= value <= MAX_RATE:
                raise ValueError(f"{field.name} must be from 1 to {MAX_RATE}, not {value}")
            if field.name not in RATE_FIELDS and value is not None and not 0 <= value <= MAX_EXACT:
                raise ValueError(f"{field.name} must be from 0 to {MAX_EXACT} or None, not {value}")


# A tenant without a plan gets the free plan's launch limits, budget caps
# included: never unlimited, and no better than what signing up gives.
DEFAULT_LIMITS = Limits(
    key_rpm=60,
    key_tpm=100_000,
    tenant_rpm=300,
    tenant_tpm=500_000,
    tenant_monthly_tokens=5_000_000,
    tenant_monthly_usd_micros=10 * MICROS_PER_USD,
    key_monthly_tokens=None,
    key_monthly_usd_micros=None,
)


def limits_for(api_key: ApiKey, plan: Plan | None) -> Limits:
    """The limits of a request made with `api_key` by a tenant on `plan`.

    The key's overrides win over the plan's per-key rates; the tenant's rates
    and caps come from the plan alone (a key cannot raise them), and a key's
    own budget caps exist only as overrides. Without a plan: DEFAULT_LIMITS.
    Pure: reads only the two objects.
    """
    base = DEFAULT_LIMITS if plan is None else _plan_limits(plan)
    return Limits(
        key_rpm=_rate(api_key.requests_per_minute, base.key_rpm),
        key_tpm=_rate(api_key.tokens_per_minute, base.key_tpm),
        tenant_rpm=base.tenant_rpm,
        tenant_tpm=base.tenant_tpm,
        tenant_monthly_tokens=base.tenant_monthly_tokens,
        tenant_monthly_usd_micros=base.tenant_monthly_usd_micros,
        key_monthly_tokens=_cap(api_key.monthly_token_budget),
        key_monthly_usd_micros=_micros(api_key.monthly_spend_budget_usd),
    )


def _plan_limits(plan: Plan) -> Limits:
    return Limits(
        key_rpm=_rate(plan.key_requests_per_minute, DEFAULT_LIMITS.key_rpm),
        key_tpm=_rate(plan.key_tokens_per_minute, DEFAULT_LIMITS.key_tpm),
        tenant_rpm=_rate(plan.tenant_requests_per_minute, DEFAULT_LIMITS.tenant_rpm),
        tenant_tpm=_rate(plan.tenant_tokens_per_minute, DEFAULT_LIMITS.tenant_tpm),
        tenant_monthly_tokens=_cap(plan.monthly_token_budget),
        tenant_monthly_usd_micros=_micros(plan.monthly_spend_budget_usd),
        key_monthly_tokens=None,
        key_monthly_usd_micros=None,
    )


def _rate(value: int | None, default: int) -> int:
    if value is None:
        return default
    # The columns allow 0, which no limiter can enforce as a rate; the nearest
    # enforceable one is one a minute.
    return min(max(value, 1), MAX_RATE)


def _cap(value: int | None) -> int | None:
    # A cap past 2^53 tokens (or $9 billion) is unreachable; counting stays exact below it.
    return None if value is None else min(value, MAX_EXACT)


def _micros(usd: Decimal | None) -> int | None:
    if usd is None:
        return None
    return _cap(max(0, int((usd * MICROS_PER_USD).to_integral_value(rounding=ROUND_FLOOR))))
