"""The Routing page's charts (aiaas/charts.py) over a chosen range of days, from
its report (routing.router.report): what routing cost and saved each day
against the top tier, how often it escalated or exited early, and the tier
mix, in all and over time."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiaas.charts import DAY_SECONDS, Bar, BarList, Chart, ChartKind, Series, Unit, days_axis
from analytics.ranges import DateRange
from analytics.web.chart_pages import ChartPage, Charts
from routing.router.report import routing_report
from tenants.web.base import PageAccess


def rate_or_gap(day: dict[str, Any], name: str) -> float | None:
    return day[name] if day["routed_requests"] else None


def report_over(tenant_id: int, date_range: DateRange) -> dict[str, Any]:
    """The report over the range's UTC days (routing counts by the day)."""
    first, last = date_range.start.date(), date_range.last_day
    return routing_report(tenant_id, (last - first).days + 1, last)


def tiers_over_time(report: dict[str, Any]) -> tuple[Series, ...]:
    per_day = report["tier_requests"]
    tiers = sorted({tier for day in per_day for tier in day})
    return tuple(Series(f"Tier {tier}", tuple(float(day.get(tier, 0)) for day in per_day)) for tier in tiers)


def routing_charts(report: dict[str, Any]) -> dict[str, Chart | BarList]:
    daily = report["daily"]
    axis = days_axis(date.fromisoformat(daily[0]["date"]), date.fromisoformat(daily[-1]["date"]))
    spent = [float(day["cost_usd"]) for day in daily]
    # Spent and saved stack up to what the top tier would have cost.
    saved = [max(0.0, float(day["top_tier_cost_usd"]) - cost) for day, cost in zip(daily, spent, strict=True)]
    escalated = Series("Escalated", tuple(rate_or_gap(day, "escalation_rate") for day in daily))
    early_exits = Series("Early exits", tuple(rate_or_gap(day, "early_exit_rate") for day in daily))
    tier_mix = report["totals"]["tier_mix"]
    return {
        "cost": Chart(
            "routing-cost-chart",
            "Cost per day, and saved against the top tier",
            ChartKind.STACKED_BARS,
            Unit.USD,
            axis,
            DAY_SECONDS,
            (Series("Spent", tuple(spent)), Series("Saved", tuple(saved))),
        ),
        "rates": Chart(
            "routing-rates-chart",
            "Escalations and early exits per day",
            ChartKind.LINE,
            Unit.SHARE,
            axis,
            DAY_SECONDS,
            (escalated, early_exits),
        ),
        "tiers_over_time": Chart(
            "routing-tier-mix-chart",
            "Tier mix per day: routed requests by the tier that served them first",
            ChartKind.STACKED_BARS,
            Unit.COUNT,
            axis,
            DAY_SECONDS,
            tiers_over_time(report),
        ),
        "tiers": BarList(
            "routing-tiers-chart",
            "Tier mix: share of routed requests",
            Unit.SHARE,
            tuple(Bar(f"Tier {tier}", share) for tier, share in tier_mix.items()),
        ),
    }


def charts_over_range(access: PageAccess, date_range: DateRange) -> Charts:
    return routing_charts(report_over(access.tenant.pk, date_range))


ROUTING_CHARTS = ChartPage("routing", charts_over_range)
