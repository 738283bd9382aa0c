"""What the dashboard's Analytics page reads, for one tenant, through the
configured engine (analytics.backends.get_backend) only: the read model,
never the raw ledger. Every query carries the tenant's id; key names come
from the tenant's own keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from analytics import rollups
from analytics.backends import get_backend
from analytics.backends.base import Figures, GroupBy, Point, Progress, Query
from analytics.ranges import LONGEST, DateRange
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
    range: DateRange
    summary: Figures
    overall: list[Point]  # one per bucket with requests
    by_status: list[Point]
    by_model: list[Point]
    by_tier: list[Point]
    top_keys: list[KeySpend]
    served_nearby: bool  # any request within LONGEST of the range (up to now), when it has none
    progress: Progress  # how far the read model is behind the ledger (all tenants')

    @property
    def lagging(self) -> bool:
        return self.progress.pending_rows > 0 and self.progress.lag_seconds >= LAG_NOTICE_SECONDS


def dashboard_figures(tenant: Tenant, date_range: DateRange) -> DashboardFigures:
    backend = get_backend()
    summary = backend.summary(date_range.query(tenant.pk))
    return DashboardFigures(
        range=date_range,
        summary=summary,
        overall=backend.timeseries(date_range.query(tenant.pk)),
        by_status=backend.timeseries(date_range.query(tenant.pk, "status")),
        by_model=backend.timeseries(date_range.query(tenant.pk, "model")),
        by_tier=backend.timeseries(date_range.query(tenant.pk, "tier")),
        top_keys=spend_by_key(tenant, backend.timeseries(date_range.query(tenant.pk, "key"))),
        served_nearby=summary.requests > 0 or served_nearby(tenant, date_range),
        progress=rollups.progress(backend.name),
    )


def timeseries_of(tenant: Tenant, date_range: DateRange, group_by: GroupBy | None = None) -> list[Point]:
    """The range's points, as GET /api/v1/analytics/timeseries returns them."""
    return get_backend().timeseries(date_range.query(tenant.pk, group_by))


def served_nearby(tenant: Tenant, date_range: DateRange) -> bool:
    """Whether the tenant had requests within LONGEST before or after the range (up to
    now): for a recent range, whether it has any traffic yet. One bounded query,
    where "ever" would read every rollup the tenant has."""
    around = Query(
        tenant.pk, date_range.start - LONGEST, min(date_range.end + LONGEST, timezone.now()), "day"
    )
    return get_backend().summary(around).requests > 0


def spend_by_key(tenant: Tenant, points: Sequence[Point]) -> list[KeySpend]:
    """Cost and requests per key over the points (grouped by key), named from the
    tenant's own keys; requests without a key, or with a deleted one, say so."""
    totals: dict[str | None, tuple[Decimal, int]] = {}
    for point in points:
        cost, requests = totals.get(point.group, (Decimal(0), 0))
        totals[point.group] = (cost + point.figures.cost_usd, requests + point.figures.requests)
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
