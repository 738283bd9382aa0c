"""Reads of the usage ledger.

Every selector takes a queryset of usage events that the caller has already
limited to one tenant (`usage_events_of(tenant)`, or an API view's
tenant-scoped queryset) and only narrows it, so a result never mixes tenants.
Days are UTC days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.db.models import Count, DecimalField, F, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDay

from billing.models import UsageEvent
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
