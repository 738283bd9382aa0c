"""What the dashboard's Analytics page reads, for one tenant: the API's own
answers (analytics.selectors: the read model, cached briefly per tenant), so
the page, its CSV export and GET /api/v1/analytics/* show the same figures.
Every query carries the tenant's id; key names come from the tenant's own keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from django.utils import timezone

from analytics import selectors
from analytics.backends import get_backend
from analytics.backends.base import GroupBy, Query
from analytics.ranges import LONGEST, DateRange
from analytics.selectors import Answer
from tenants.models import ApiKey, Tenant

# The rollup worker runs every few seconds; past this, the page says its figures are behind.
LAG_NOTICE_SECONDS = 30.0


@dataclass(frozen=True)
class KeySpend:
    label: str
    cost_usd: Decimal
    requests: int


@dataclass(frozen=True)
class DashboardFigures:
    """The range's summary and timeseries as the API answers them (`figures_json` each)."""

    range: DateRange
    summary: Answer  # with "freshness": how far the read model is behind the ledger (all tenants')
    overall: list[Answer]  # one point per bucket with requests
    by_status: list[Answer]
    by_model: list[Answer]
    by_tier: list[Answer]
    top_keys: list[KeySpend]
    served_nearby: bool  # any request within LONGEST of the range (up to now), when it has none

    @property
    def lagging(self) -> bool:
        freshness = self.summary["freshness"]
        return bool(freshness["pending_rows"] > 0 and freshness["lag_seconds"] >= LAG_NOTICE_SECONDS)


def dashboard_figures(tenant: Tenant, date_range: DateRange) -> DashboardFigures:
    summary = selectors.summary(date_range.query(tenant.pk))
    return DashboardFigures(
        range=date_range,
        summary=summary,
        overall=timeseries_of(tenant, date_range),
        by_status=timeseries_of(tenant, date_range, "status"),
        by_model=timeseries_of(tenant, date_range, "model"),
        by_tier=timeseries_of(tenant, date_range, "tier"),
        top_keys=spend_by_key(tenant, timeseries_of(tenant, date_range, "key")),
        served_nearby=summary["requests"] > 0 or served_nearby(tenant, date_range),
    )


@dataclass(frozen=True)
class KeyFigures:
    """One key's summary and timeseries over a range (the key's page in the dashboard)."""

    range: DateRange
    summary: Answer
    by_status: list[Answer]
    by_model: list[Answer]


def key_figures(tenant: Tenant, api_key_id: int, date_range: DateRange) -> KeyFigures:
    """What GET /api/v1/analytics/* answers with `key=` this key: the tenant's
    figures filtered to it (the caller checked the key is the tenant's)."""

    def of_key(group_by: GroupBy | None = None) -> Query:
        return replace(date_range.query(tenant.pk, group_by), api_key_ids=(api_key_id,))

    return KeyFigures(
        range=date_range,
        summary=selectors.summary(of_key()),
        by_status=selectors.timeseries(of_key("status"))["data"],
        by_model=selectors.timeseries(of_key("model"))["data"],
    )


def timeseries_of(tenant: Tenant, date_range: DateRange, group_by: GroupBy | None = None) -> list[Answer]:
    """The range's points, exactly as GET /api/v1/analytics/timeseries returns them."""
    points: list[Answer] = selectors.timeseries(date_range.query(tenant.pk, group_by))["data"]
    return points


def served_nearby(tenant: Tenant, date_range: DateRange) -> bool:
    """Whether the tenant had requests within LONGEST before or after the range (up to
    now): for a recent range, whether it has any traffic yet. One bounded query,
    where "ever" would read every rollup the tenant has."""
    end = min(date_range.end + LONGEST, timezone.now())
    return get_backend().summary(Query(tenant.pk, date_range.start - LONGEST, end, "day")).requests > 0


def spend_by_key(tenant: Tenant, points: Sequence[Answer]) -> list[KeySpend]:
    """Cost and requests per key over the points (grouped by key), named from the
    tenant's own keys; requests without a key, or with a deleted one, say so."""
    totals: dict[str | None, tuple[Decimal, int]] = {}
    for point in points:
        cost, requests = totals.get(point["group"], (Decimal(0), 0))
        totals[point["group"]] = (cost + Decimal(point["cost_usd"]), requests + point["requests"])
    ids = [int(group) for group in totals if group and group.isdigit()]
    keys = {str(key.pk): key for key in ApiKey.objects.filter(tenant=tenant, pk__in=ids)}
    return [
        KeySpend(label=key_label(group, keys), cost_usd=cost, requests=requests)
        for group, (cost, requests) in totals.items()
    ]


def key_label(group: str | None, keys: dict[str, ApiKey]) -> str:
    if not group:
        return "No key"
    key = keys.get(group)
    return f"{key.name} ({key.prefix})" if key else f"Deleted key #{group}"
