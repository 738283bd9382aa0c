"""The Usage page's charts (aiaas/charts.py): the month's requests and spend per
day, and spend by model, from the same ledger figures as its tables."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from aiaas.charts import DAY_SECONDS, Bar, BarList, Chart, ChartKind, Series, Unit, days_axis, requests_text
from billing.selectors import UsageGroup, UsagePeriod, UsageTotals

MODELS_SHOWN = 10
NOTHING = UsageTotals(requests=0, prompt_tokens=0, completion_tokens=0, cost_usd=Decimal(0))


def usage_charts(
    period: UsagePeriod, by_day: list[UsageGroup], by_model: list[UsageGroup], today: date
) -> dict[str, Chart | BarList]:
    """Days up to today (or the period's end, for a past period)."""
    axis = days_axis(period.start, max(period.start, min(period.end, today)))
    totals = {group.identity["day"]: group.totals for group in by_day}
    per_day = [totals.get(moment.date().isoformat(), NOTHING) for moment in axis]
    requests = Series("Requests", tuple(float(day.requests) for day in per_day))
    spend = Series("Spend", tuple(float(day.cost_usd) for day in per_day))
    return {
        "requests": Chart(
            "usage-requests-chart",
            "Requests per day",
            ChartKind.STACKED_BARS,
            Unit.COUNT,
            axis,
            DAY_SECONDS,
            (requests,),
        ),
        "spend": Chart(
            "usage-spend-chart",
            "Spend per day",
            ChartKind.STACKED_BARS,
            Unit.USD,
            axis,
            DAY_SECONDS,
            (spend,),
        ),
        "models": BarList.largest_first(
            "usage-models-chart",
            "Spend by model",
            Unit.USD,
            [
                Bar(
                    group.identity["model"] or "No model served",
                    group.totals.cost_usd,
                    requests_text(group.totals.requests),
                )
                for group in by_model
            ],
            MODELS_SHOWN,
        ),
    }
