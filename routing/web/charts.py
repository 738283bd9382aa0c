"""The Routing page's charts (aiaas/charts.py), from its report
(routing.router.report): what routing cost and saved each day against the
top tier, how often it escalated or exited early, and the tier mix."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiaas.charts import DAY_SECONDS, Bar, BarList, Chart, ChartKind, Series, Unit, days_axis


def rate_or_gap(day: dict[str, Any], name: str) -> float | None:
    return day[name] if day["routed_requests"] else None


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
        "tiers": BarList(
            "routing-tiers-chart",
            "Tier mix: share of routed requests",
            Unit.SHARE,
            tuple(Bar(f"Tier {tier}", share) for tier, share in tier_mix.items()),
        ),
    }
