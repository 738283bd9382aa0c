"""The Overview page's charts over a chosen range: requests, spend against the
monthly budget, and the tier mix, from the analytics read model."""

from __future__ import annotations

from itertools import accumulate

from aiaas.charts import ChartKind, Series, Unit
from analytics.dashboard import timeseries_of
from analytics.ranges import DateRange
from analytics.web.chart_pages import ChartPage, Charts
from analytics.web.charts import (
    along,
    charts_over,
    cost_of,
    group_keys,
    requests_of,
    stacked,
    tier_label,
    tier_order,
)
from tenants.web.base import PageAccess


def overview_charts(access: PageAccess, date_range: DateRange) -> Charts:
    tenant = access.tenant
    axis, per, chart = charts_over(date_range)
    overall = timeseries_of(tenant, date_range)
    by_tier = timeseries_of(tenant, date_range, "tier")
    spent = tuple(accumulate(value or 0.0 for value in along(axis, overall, cost_of, 0)))
    spend = [Series("Spend so far", spent)]
    budget = tenant.plan.monthly_spend_budget_usd if tenant.plan else None
    if budget is not None:
        spend.append(Series("Monthly budget", tuple(float(budget) for _ in axis)))
    return {
        "requests": chart(
            "overview-requests-chart",
            f"Requests per {per}",
            ChartKind.STACKED_BARS,
            Unit.COUNT,
            (Series("Requests", along(axis, overall, requests_of, 0)),),
        ),
        "spend": chart(
            "overview-spend-chart",
            "Spend over the range, against the monthly budget" if budget else "Spend over the range",
            ChartKind.LINE,
            Unit.USD,
            tuple(spend),
        ),
        "tiers": chart(
            "overview-tiers-chart",
            f"Tier mix: requests per {per} by tier",
            ChartKind.STACKED_BARS,
            Unit.COUNT,
            stacked(axis, by_tier, requests_of, sorted(group_keys(by_tier), key=tier_order), tier_label),
        ),
    }


OVERVIEW_CHARTS = ChartPage("overview", overview_charts)
