"""The Analytics page's charts, built from the API's answers (analytics/dashboard.py)
with the shared chart layer (aiaas/charts.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from aiaas.charts import Bar, BarList, Chart, ChartKind, Series, Unit, requests_text
from analytics.dashboard import DashboardFigures, KeyFigures
from analytics.ranges import DateRange
from analytics.selectors import Answer

# A stacked chart shows this many groups, largest first, and the rest as "Other".
MOST_GROUPS = 6
TOP_KEYS = 10
STATUS_LABELS = {"2xx": "Served (2xx)", "4xx": "Refused (4xx)", "5xx": "Failed (5xx)"}

Value = Callable[[Answer], float | None]


def requests_of(point: Answer) -> float:
    return float(point["requests"])


def cost_of(point: Answer) -> float:
    return float(point["cost_usd"])


def percentile(name: str) -> Value:
    return lambda point: point["latency_ms"][name]


def moment_of(point: Answer) -> datetime:
    return datetime.fromisoformat(point["t"])


def along(
    axis: Sequence[datetime], points: Sequence[Answer], value: Value, empty: float | None
) -> tuple[float | None, ...]:
    """One value per bucket of the axis: the point's, or `empty` where no point is."""
    at = {moment_of(point): value(point) for point in points}
    return tuple(at.get(moment, empty) for moment in axis)


def stacked(
    axis: Sequence[datetime],
    points: Sequence[Answer],
    value: Value,
    order: Sequence[str | None],
    label: Callable[[str | None], str],
) -> tuple[Series, ...]:
    """One series per group in `order`, the groups past MOST_GROUPS summed as "Other"."""
    shown = list(order[:MOST_GROUPS])
    series = [
        Series(label(group), along(axis, [p for p in points if p["group"] == group], value, 0))
        for group in shown
    ]
    rest = [point for point in points if point["group"] not in shown]
    if rest:
        totals: dict[datetime, float] = {}
        for point in rest:
            totals[moment_of(point)] = totals.get(moment_of(point), 0) + (value(point) or 0)
        series.append(Series("Other", tuple(totals.get(moment, 0) for moment in axis)))
    return tuple(series)


def largest_groups(points: Sequence[Answer], value: Value) -> list[str | None]:
    totals: dict[str | None, float] = {}
    for point in points:
        totals[point["group"]] = totals.get(point["group"], 0) + (value(point) or 0)
    return sorted(totals, key=lambda group: totals[group], reverse=True)


def tier_label(group: str | None) -> str:
    return f"Tier {group}" if group else "No tier served"


def model_label(group: str | None) -> str:
    return group or "No model served"


ChartOf = Callable[[str, str, ChartKind, Unit, tuple[Series, ...]], Chart]


def charts_over(date_range: DateRange) -> tuple[tuple[datetime, ...], str, ChartOf]:
    """The range's axis, its step's name ("hour" or "day"), and a Chart maker over them."""
    axis = tuple(date_range.buckets)
    step = int(date_range.step.total_seconds())

    def chart(id: str, title: str, kind: ChartKind, unit: Unit, series: tuple[Series, ...]) -> Chart:
        return Chart(id=id, title=title, kind=kind, unit=unit, axis=axis, step_seconds=step, series=series)

    return axis, "hour" if date_range.granularity == "hour" else "day", chart


def charts_of(figures: DashboardFigures) -> dict[str, Chart | BarList]:
    axis, per, chart = charts_over(figures.range)

    statuses = [
        status for status in STATUS_LABELS if any(point["group"] == status for point in figures.by_status)
    ]
    return {
        "requests": chart(
            "chart-requests",
            f"Requests per {per} by outcome",
            ChartKind.STACKED_BARS,
            Unit.COUNT,
            stacked(axis, figures.by_status, requests_of, statuses, lambda group: STATUS_LABELS[group or ""]),
        ),
        "latency": chart(
            "chart-latency",
            "Latency percentiles",
            ChartKind.LINE,
            Unit.MILLISECONDS,
            tuple(
                Series(name, along(axis, figures.overall, percentile(name), None))
                for name in ("p50", "p95", "p99")
            ),
        ),
        "spend": chart(
            "chart-spend",
            f"Spend per {per} by model",
            ChartKind.STACKED_BARS,
            Unit.USD,
            stacked(axis, figures.by_model, cost_of, largest_groups(figures.by_model, cost_of), model_label),
        ),
        "tiers": chart(
            "chart-tiers",
            f"Tier mix: requests per {per} by tier",
            ChartKind.STACKED_BARS,
            Unit.COUNT,
            stacked(
                axis,
                figures.by_tier,
                requests_of,
                sorted(group_keys(figures.by_tier), key=tier_order),
                tier_label,
            ),
        ),
        "keys": BarList.largest_first(
            "chart-keys",
            "Top API keys by spend",
            Unit.USD,
            [Bar(key.label, key.cost_usd, requests_text(key.requests)) for key in figures.top_keys],
            TOP_KEYS,
        ),
        "errors": BarList.largest_first(
            "chart-errors",
            "Errors by type",
            Unit.COUNT,
            [Bar(kind, count) for kind, count in figures.summary["errors"].items()],
            TOP_KEYS,
        ),
    }


def key_charts_of(figures: KeyFigures) -> dict[str, Chart]:
    """One key's page: its requests by outcome and its spend by model, per bucket."""
    axis = tuple(figures.range.buckets)
    step = int(figures.range.step.total_seconds())
    per = "hour" if figures.range.granularity == "hour" else "day"
    statuses = [
        status for status in STATUS_LABELS if any(point["group"] == status for point in figures.by_status)
    ]
    return {
        "requests": Chart(
            id="chart-key-requests",
            title=f"Requests per {per} by outcome",
            kind=ChartKind.STACKED_BARS,
            unit=Unit.COUNT,
            axis=axis,
            step_seconds=step,
            series=stacked(
                axis, figures.by_status, requests_of, statuses, lambda group: STATUS_LABELS[group or ""]
            ),
        ),
        "spend": Chart(
            id="chart-key-spend",
            title=f"Spend per {per} by model",
            kind=ChartKind.STACKED_BARS,
            unit=Unit.USD,
            axis=axis,
            step_seconds=step,
            series=stacked(
                axis, figures.by_model, cost_of, largest_groups(figures.by_model, cost_of), model_label
            ),
        ),
    }


def group_keys(points: Sequence[Answer]) -> set[str | None]:
    return {point["group"] for point in points}


def tier_order(group: str | None) -> tuple[bool, int]:
    return (not group, int(group) if group and group.isdigit() else 0)
