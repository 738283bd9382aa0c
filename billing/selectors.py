"""Reads of the usage ledger, and the invoice preview built on it.

Every selector takes a queryset of usage events that the caller has already
limited to one tenant (`usage_events_of(tenant)`, or an API view's
tenant-scoped queryset) and only narrows it, so a result never mixes tenants.
Days are UTC days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from django.db.models import Count, DecimalField, F, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDay

from billing.limits import DEFAULT_LIMITS, billing_period, billing_period_bounds
from billing.limits.limiter import REASONS
from billing.models import BillingAccount, CapMode, Plan, SubscriptionStatus, UsageEvent
from tenants.models import ApiKey, Tenant


class UsageGrouping(StrEnum):
    DAY = "day"
    MODEL = "model"
    KEY = "key"
    TIER = "tier"


@dataclass(frozen=True)
class UsagePeriod:
    """UTC days from `start` to `end`, both included."""

    start: date
    end: date

    @classmethod
    def month_of(cls, day: date) -> UsagePeriod:
        first = day.replace(day=1)
        next_first = (first + timedelta(days=32)).replace(day=1)
        return cls(first, next_first - timedelta(days=1))

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def ends_before(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)


@dataclass(frozen=True)
class UsageTotals:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True)
class UsageGroup:
    """One group's identity (e.g. {"model": "sim-small"}) and its totals."""

    identity: dict[str, Any]
    totals: UsageTotals


GROUP_EXPRESSIONS = {
    UsageGrouping.DAY: TruncDay("created_at", tzinfo=UTC),
    UsageGrouping.MODEL: F("model"),
    UsageGrouping.KEY: F("api_key_id"),
    UsageGrouping.TIER: F("tier"),
}
TOTALS = {
    "requests": Count("id"),
    "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
    "completion_tokens": Coalesce(Sum("completion_tokens"), 0),
    "cost_usd": Coalesce(Sum("cost_usd"), Value(Decimal(0)), output_field=DecimalField()),
}


def usage_events_of(tenant: Tenant) -> QuerySet[UsageEvent]:
    return UsageEvent.objects.filter(tenant=tenant)


def in_period(events: QuerySet[UsageEvent], period: UsagePeriod) -> QuerySet[UsageEvent]:
    return events.filter(created_at__gte=period.starts_at, created_at__lt=period.ends_before)


def usage_totals(events: QuerySet[UsageEvent], period: UsagePeriod) -> UsageTotals:
    """Requests, tokens and cost of the events in the period."""
    return UsageTotals(**in_period(events, period).aggregate(**TOTALS))


def spend_between(tenant: Tenant, starts_at: datetime, ends_at: datetime) -> Decimal:
    """What the tenant's requests cost from `starts_at` up to `ends_at` (what spend budgets count)."""
    spent = usage_events_of(tenant).filter(created_at__gte=starts_at, created_at__lt=ends_at)
    total: Decimal = spent.aggregate(total=Coalesce(Sum("cost_usd"), Value(Decimal(0))))["total"]
    return total


def usage_groups(
    events: QuerySet[UsageEvent], period: UsagePeriod, group_by: UsageGrouping
) -> list[UsageGroup]:
    """The period's totals per day, model, API key or tier, in that group's order.

    Requests no model served have model "" and tier None. Key groups name only
    keys of the events' own tenant; a deleted key's group has None for all three.
    """
    rows = list(
        in_period(events, period)
        .annotate(group=GROUP_EXPRESSIONS[group_by])
        .values("group")
        .annotate(**TOTALS)
        .order_by(F("group").asc(nulls_last=True))
    )
    identify = identities_of_keys(events, rows) if group_by == UsageGrouping.KEY else None
    groups: list[UsageGroup] = []
    for row in rows:
        identity: dict[str, Any]
        value = row.pop("group")
        if identify is not None:
            identity = identify.get(value, {"key_id": None, "name": None, "prefix": None})
        elif group_by == UsageGrouping.DAY:
            identity = {"day": value.date().isoformat()}
        else:
            identity = {group_by.value: value}
        groups.append(UsageGroup(identity, UsageTotals(**row)))
    return groups


def identities_of_keys(events: QuerySet[UsageEvent], rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """{key id: identity} for the grouped keys that belong to the events' tenant."""
    keys = ApiKey.objects.filter(
        pk__in=[row["group"] for row in rows if row["group"] is not None],
        tenant__in=events.values("tenant"),
    )
    return {key.pk: {"key_id": key.pk, "name": key.name, "prefix": key.prefix} for key in keys}


# The invoice preview


class QuotaState(StrEnum):
    WITHIN = "within"  # under 80% of the included tokens
    NEARING = "nearing"  # 80% or more
    OVERAGE = "overage"  # past them on a soft cap: billed as overage
    BLOCKED = "blocked"  # past them on a hard cap: /v1 answers 429 until the period ends


NEARING_SHARE = Decimal("0.8")
CENTS = Decimal("0.01")
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class BillingPeriod:
    starts_at: datetime
    ends_at: datetime
    source: str  # "stripe": the subscription's period; "calendar": the UTC month


@dataclass(frozen=True)
class InvoicePreview:
    """This period's bill as our own ledger sees it, before Stripe invoices it."""

    plan: Plan | None
    period: BillingPeriod
    subscription_status: str
    cap_mode: str
    base_price_usd: Decimal
    included_tokens: int
    included_requests: int | None  # None: requests are not counted against an allowance
    used_tokens: int
    used_requests: int
    overage_tokens: int
    overage_usd: Decimal
    total_usd: Decimal
    projected_tokens: int
    projected_overage_usd: Decimal
    projected_total_usd: Decimal
    quota_state: QuotaState
    tokens_remaining: int | None  # before a hard cap refuses; None on a soft cap


def billing_account_of(tenant: Tenant) -> BillingAccount | None:
    return BillingAccount.objects.filter(tenant=tenant).first()


def current_billing_period(account: BillingAccount | None, now: datetime) -> BillingPeriod:
    """The period the tenant's counters run in: its subscription's while that is
    live (as billing.limits counts it), else the calendar month (UTC)."""
    if (
        account is not None
        and account.is_live
        and account.current_period_start
        and account.current_period_end
    ):
        bounds = billing_period_bounds(
            billing_period(account.current_period_start, account.current_period_end, now)
        )
        if bounds is not None:
            return BillingPeriod(*bounds, source="stripe")
    month = UsagePeriod.month_of(now.astimezone(UTC).date())
    return BillingPeriod(month.starts_at, month.ends_before, source="calendar")


def invoice_preview(tenant: Tenant, now: datetime | None = None) -> InvoicePreview:
    """Included, used, overage and the projected total of the tenant's current
    period, from the ledger. The projection extends the period's usage so far
    at the same rate to its end. Money is rounded to cents at the end."""
    moment = now or datetime.now(UTC)
    account = billing_account_of(tenant)
    period = current_billing_period(account, moment)
    plan = tenant.plan
    used = (
        usage_events_of(tenant)
        .filter(created_at__gte=period.starts_at, created_at__lt=period.ends_at)
        .exclude(error_type__in=REASONS)  # refused by the limits: never served, never billed
        .aggregate(requests=Count("id"), tokens=Coalesce(Sum(F("prompt_tokens") + F("completion_tokens")), 0))
    )
    used_tokens, used_requests = int(used["tokens"]), int(used["requests"])
    base = plan.monthly_price_usd if plan else Decimal(0)
    included = plan.included_tokens if plan else DEFAULT_LIMITS.tenant_monthly_tokens or 0
    hard = plan is None or plan.cap_mode == CapMode.HARD
    rate = Decimal(0) if hard or plan is None else plan.overage_usd_per_million_tokens
    elapsed = (moment - period.starts_at).total_seconds()
    length = (period.ends_at - period.starts_at).total_seconds()
    projected = used_tokens if elapsed <= 0 else max(used_tokens, int(used_tokens * length / elapsed))
    overage = max(0, used_tokens - included)
    projected_overage = max(0, projected - included)
    overage_usd = (overage * rate / MILLION).quantize(CENTS, ROUND_HALF_UP)
    projected_overage_usd = (projected_overage * rate / MILLION).quantize(CENTS, ROUND_HALF_UP)
    return InvoicePreview(
        plan=plan,
        period=period,
        subscription_status=account.subscription_status if account else SubscriptionStatus.NONE,
        cap_mode=CapMode.HARD if hard else CapMode.SOFT,
        base_price_usd=base,
        included_tokens=included,
        included_requests=plan.included_requests if plan else None,
        used_tokens=used_tokens,
        used_requests=used_requests,
        overage_tokens=0 if hard else overage,
        overage_usd=overage_usd,
        total_usd=base + overage_usd,
        projected_tokens=projected,
        projected_overage_usd=projected_overage_usd,
        projected_total_usd=base + projected_overage_usd,
        quota_state=quota_state(
            used_tokens, included, hard, used_requests, plan.included_requests if plan else None
        ),
        tokens_remaining=max(0, included - used_tokens) if hard else None,
    )


def quota_state(
    used_tokens: int, included_tokens: int, hard: bool, used_requests: int, included_requests: int | None
) -> QuotaState:
    """The tighter of the token and the request allowance (requests when the plan counts them)."""
    shares = [(used_tokens, included_tokens)]
    if included_requests is not None:
        shares.append((used_requests, included_requests))
    if any(used >= included for used, included in shares):
        return QuotaState.BLOCKED if hard else QuotaState.OVERAGE
    if any(used >= included * NEARING_SHARE for used, included in shares):
        return QuotaState.NEARING
    return QuotaState.WITHIN


# The billing page's plan comparison: each plan, and whether and why it can be subscribed to.


class Unavailable(StrEnum):
    """Why a plan's button is not offered, in words the page shows."""

    NOT_CONFIGURED = "Stripe is not configured on this platform, so plans cannot be bought online."
    STRIPE_DOWN = "Stripe cannot be reached right now; try again in a few minutes."
    STRIPE_KEY_REFUSED = "Stripe refuses this platform's key; the operators have been told."
    NOT_A_MANAGER = "Only owners and admins can subscribe or change plans."
    CURRENT = "Your current plan."
    ALREADY_ENDING = "Your subscription already ends with this period; you move to this plan then."
    REQUESTED = "Requested: your plan here changes once Stripe confirms it."
    NOT_SOLD_ONLINE = "This plan is not sold online: contact us."
    FREE = "Free: nothing to subscribe to."


class PlanAction(StrEnum):
    """What the button of a plan's card does."""

    SUBSCRIBE = "subscribe"  # Stripe Checkout: a first subscription
    SWITCH = "switch"  # the subscription's prices swapped for the plan's (billing/plan_changes.py)
    END_AT_PERIOD_END = "end_at_period_end"  # to the free default plan: the subscription ends with its period
    KEEP = "keep"  # a scheduled end undone


@dataclass(frozen=True)
class PlanOffer:
    plan: Plan
    is_current: bool
    action: PlanAction | None  # None: not offered, for the reason in `unavailable`
    unavailable: Unavailable | None

    @property
    def can_subscribe(self) -> bool:
        return self.action is PlanAction.SUBSCRIBE


def default_plan() -> Plan | None:
    """The plan of tenants without a live subscription (an ended one lands there)."""
    return Plan.objects.filter(is_default=True).first()


def change_to(current: Plan | None, target: Plan, *, ending: bool) -> PlanAction | Unavailable:
    """What moving a live subscription from `current` to `target` does, or why it is not
    offered. `ending`: the subscription already ends with its period. Only the default
    plan is free to move to (an ended subscription puts the tenant on it); a plan
    without a Stripe price otherwise is sold by hand."""
    if current is not None and target.pk == current.pk:
        return PlanAction.KEEP if ending else Unavailable.CURRENT
    if target.stripe_price_id:
        return PlanAction.SWITCH
    if target.is_default:
        return Unavailable.ALREADY_ENDING if ending else PlanAction.END_AT_PERIOD_END
    return Unavailable.NOT_SOLD_ONLINE


def subscribe_to(plan: Plan) -> PlanAction | Unavailable:
    if not plan.stripe_price_id:
        return Unavailable.FREE if plan.monthly_price_usd == 0 else Unavailable.NOT_SOLD_ONLINE
    return PlanAction.SUBSCRIBE


def plan_offers(
    current: Plan | None,
    account: BillingAccount | None,
    *,
    can_manage: bool,
    stripe: Unavailable | None,
) -> list[PlanOffer]:
    """Every plan, cheapest first, with what its button does, or the first reason there is
    none (`stripe`: why Stripe cannot take a change, None when it can). A tenant with a
    live subscription changes it; one without subscribes through Checkout."""
    subscribed = account is not None and account.is_live
    offers = []
    for plan in Plan.objects.order_by("monthly_price_usd", "slug"):
        if subscribed and account is not None:
            if account.requested_plan_id == plan.pk:
                outcome: PlanAction | Unavailable = Unavailable.REQUESTED
            else:
                outcome = change_to(current, plan, ending=account.cancel_at_period_end)
        else:
            outcome = subscribe_to(plan)
        if isinstance(outcome, PlanAction):
            outcome = stripe or (outcome if can_manage else Unavailable.NOT_A_MANAGER)
        is_current = current is not None and plan.pk == current.pk
        if isinstance(outcome, PlanAction):
            offers.append(PlanOffer(plan, is_current, outcome, None))
        else:
            offers.append(PlanOffer(plan, is_current, None, outcome))
    return offers
