"""Reads for a tenant's dashboard: its team, its API keys and their limits.

Each selector takes the tenant and evaluates its query inside that tenant's
schema (users) or filtered by it (keys, in the public schema), so a result
never holds another tenant's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from django.db.models import Q, QuerySet
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import User
from billing.limits import Limits, limits_for
from billing.limits.resolution import MICROS_PER_USD
from billing.models import Plan, UsageEvent
from tenants.models import ApiKey, Tenant
from tenants.selectors import api_keys_of


class KeyStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class LimitItem:
    text: str  # compact: "60 rpm", "$25.00/month"
    from_plan: bool = False  # the key does not override it: the plan's value


@dataclass(frozen=True)
class ListedKey:
    key: ApiKey
    status: KeyStatus
    limits: tuple[LimitItem, ...]


@dataclass(frozen=True)
class TeamMember:
    user: User
    has_accepted: bool  # False while the invitation is pending (no password yet)


@dataclass(frozen=True)
class DashboardSummary:
    member_count: int
    active_key_count: int


@dataclass(frozen=True)
class FirstRun:
    """The overview's three first steps, each done or not from what happened."""

    has_key: bool  # an active key exists
    has_request: bool  # a request reached the ledger (the playground's or any other)
    has_api_call: bool  # a key authenticated a call to /v1 or /api (last_used_at)

    @property
    def done_count(self) -> int:
        return sum((self.has_key, self.has_request, self.has_api_call))

    @property
    def is_done(self) -> bool:
        return self.done_count == 3


def active_api_keys_of(tenant: Tenant) -> QuerySet[ApiKey]:
    return (
        api_keys_of(tenant)
        .filter(revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    )


def key_status(key: ApiKey) -> KeyStatus:
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    return KeyStatus.ACTIVE if key.is_usable() else KeyStatus.EXPIRED


def keys_matching(tenant: Tenant, search: str = "") -> QuerySet[ApiKey]:
    """The tenant's keys, newest first; with `search`, those whose name contains it
    or whose prefix starts with it (a pasted `aiaas_<prefix>_...` finds its key)."""
    keys = api_keys_of(tenant)
    search = search.strip()
    if not search:
        return keys
    if "\x00" in search:  # PostgreSQL's text holds no NUL, so no name or prefix has one
        return keys.none()
    prefix = search.removeprefix("aiaas_").split("_", 1)[0]
    matches = Q(name__icontains=search)
    if prefix:
        matches |= Q(prefix__startswith=prefix)
    return keys.filter(matches)


def listed_keys(keys: Iterable[ApiKey], plan: Plan | None) -> list[ListedKey]:
    """Each key with its status and its limits under `plan` (the keys' tenant's)."""
    return [ListedKey(key, key_status(key), key_limit_items(key, plan)) for key in keys]


def key_limit_items(key: ApiKey, plan: Plan | None) -> tuple[LimitItem, ...]:
    """The per-key limits a key runs under, as the gateway resolves them: its
    rates (its own, or the plan's, marked so), then its own monthly caps if any.
    The tenant's rates and caps apply on top and are not repeated here."""
    limits = limits_for(key, plan)
    items = [
        LimitItem(f"{compact_count(limits.key_rpm)} rpm", from_plan=key.requests_per_minute is None),
        LimitItem(f"{compact_count(limits.key_tpm)} tpm", from_plan=key.tokens_per_minute is None),
    ]
    if key.monthly_token_budget is not None:
        items.append(LimitItem(f"{compact_count(key.monthly_token_budget)} tokens/month"))
    if key.monthly_spend_budget_usd is not None:
        items.append(LimitItem(f"{usd(key.monthly_spend_budget_usd)}/month"))
    return tuple(items)


def plan_limits_summary(plan: Plan | None) -> str:
    """One line of what `plan` allows (DEFAULT_LIMITS without a plan), e.g.
    "60 rpm · 100k tpm per key; 300 rpm · 500k tpm per workspace; 5M tokens and $10.00 a month"."""
    limits = plan_limits(plan)
    caps = []
    if limits.tenant_monthly_tokens is not None:
        caps.append(f"{compact_count(limits.tenant_monthly_tokens)} tokens")
    if limits.tenant_monthly_usd_micros is not None:
        caps.append(usd(Decimal(limits.tenant_monthly_usd_micros) / MICROS_PER_USD))
    return (
        f"{compact_count(limits.key_rpm)} rpm · {compact_count(limits.key_tpm)} tpm per key; "
        f"{compact_count(limits.tenant_rpm)} rpm · {compact_count(limits.tenant_tpm)} tpm per workspace; "
        + (f"{' and '.join(caps)} a month" if caps else "no monthly cap")
    )


def plan_limits(plan: Plan | None) -> Limits:
    # A key without overrides runs under exactly the plan's limits.
    return limits_for(ApiKey(), plan)


def compact_count(value: int) -> str:
    """10_000 -> "10k", 1_500_000 -> "1.5M"; a count these units would round
    is written in full ("1,234"), so a limit is never shown other than it is."""
    for unit, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if value >= unit and value % unit == 0:
            return f"{value // unit:,}{suffix}"
        if value >= unit and value * 10 % unit == 0:
            return f"{value // unit:,}.{value * 10 // unit % 10}{suffix}"
    return f"{value:,}"


def usd(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def team_of(tenant: Tenant) -> list[TeamMember]:
    """The tenant's users, by email."""
    with tenant_context(tenant):
        return [TeamMember(user, user.has_usable_password()) for user in User.objects.order_by("email")]


def first_run_of(tenant: Tenant) -> FirstRun:
    keys = api_keys_of(tenant)
    return FirstRun(
        has_key=active_api_keys_of(tenant).exists(),
        has_request=UsageEvent.objects.filter(tenant=tenant).exists(),
        has_api_call=keys.filter(last_used_at__isnull=False).exists(),
    )


def dashboard_summary(tenant: Tenant) -> DashboardSummary:
    with tenant_context(tenant):
        member_count = User.objects.count()
    return DashboardSummary(member_count=member_count, active_key_count=active_api_keys_of(tenant).count())
