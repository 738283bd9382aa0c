"""The limits that apply to one request: the tenant's plan, then the key's overrides."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from billing.limits.periods import billing_period

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
    """Per-minute rates (each at least 1) and per-period caps (None: no cap).

    `period` is the tenant's own billing period when it has a live Stripe
    subscription (billing.limits.periods.billing_period); None means the
    calendar month. The limiter counts budgets in it.
    """

    key_rpm: int
    key_tpm: int
    tenant_rpm: int
    tenant_tpm: int
    tenant_monthly_tokens: int | None
    tenant_monthly_usd_micros: int | None
    key_monthly_tokens: int | None
    key_monthly_usd_micros: int | None
    tenant_period_requests: int | None = None  # a hard-cap plan's included requests
    period: str | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            if field.name == "period":
                continue
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
    A hard-cap plan caps the tenant's tokens at its included tokens too, and
    its requests at its included requests.
    The period is the tenant's billing period when the key was loaded with
    its tenant's billing account (tenants.selectors.find_usable_api_key).
    Pure: reads only the objects given and those loaded with them.
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
        tenant_period_requests=base.tenant_period_requests,
        period=_billing_period_of(api_key),
    )


def _billing_period_of(api_key: ApiKey) -> str | None:
    """The key's tenant's billing period, only from what is already loaded: the
    gateway calls this in its event loop, where a query would be refused."""
    tenant = api_key._state.fields_cache.get("tenant")
    account = None if tenant is None else tenant._state.fields_cache.get("billing_account")
    if account is None or not account.is_live:
        return None
    start: datetime | None = account.current_period_start
    end: datetime | None = account.current_period_end
    return None if start is None or end is None else billing_period(start, end)


def _plan_limits(plan: Plan) -> Limits:
    return Limits(
        key_rpm=_rate(plan.key_requests_per_minute, DEFAULT_LIMITS.key_rpm),
        key_tpm=_rate(plan.key_tokens_per_minute, DEFAULT_LIMITS.key_tpm),
        tenant_rpm=_rate(plan.tenant_requests_per_minute, DEFAULT_LIMITS.tenant_rpm),
        tenant_tpm=_rate(plan.tenant_tokens_per_minute, DEFAULT_LIMITS.tenant_tpm),
        tenant_monthly_tokens=_tenant_token_cap(plan),
        tenant_monthly_usd_micros=_micros(plan.monthly_spend_budget_usd),
        key_monthly_tokens=None,
        key_monthly_usd_micros=None,
        tenant_period_requests=_cap(plan.included_requests) if plan.cap_mode == "hard" else None,
    )


def _tenant_token_cap(plan: Plan) -> int | None:
    caps = [plan.monthly_token_budget]
    if plan.cap_mode == "hard":
        caps.append(plan.included_tokens)
    present = [cap for cap in caps if cap is not None]
    return _cap(min(present)) if present else None


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
