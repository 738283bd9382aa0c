"""Charts on dashboard pages: what a chart draws, and the same figures as text.

A page builds a `Chart` (a time axis and series) or a `BarList` (labelled
values, largest first) and includes templates/partials/chart.html or
bar_list.html with it. Every chart is readable without its drawing: the
partial renders its figures as a table and its `summary` as the drawing's
aria-label, and hands the data to static/js/charts.js (uPlot, docs/decisions/
0024) by `json_script`. A page without JavaScript shows the table.

Each also exports what it shows (`csv_header`/`csv_rows`, `as_json`): raw
numbers, times in ISO 8601 UTC, for the pages' CSV and JSON data endpoints.
A `QuotaList` is what a plan allows and what is used of it, drawn as meters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

DAY_SECONDS = 86_400


class ChartKind(StrEnum):
    LINE = "line"
    STACKED_BARS = "stacked-bars"


class Unit(StrEnum):
    COUNT = "count"
    MILLISECONDS = "ms"
    USD = "usd"
    SHARE = "share"  # 0-1, shown as a percentage


NO_VALUE = "\N{EN DASH}"  # as the templates show a figure that has none


def format_value(value: float | Decimal | None, unit: Unit) -> str:
    """One figure as the tables, summaries and tooltips show it."""
    if value is None:
        return NO_VALUE
    if unit == Unit.USD:
        return f"${value:.6f}"
    if unit == Unit.MILLISECONDS:
        return f"{value:,.1f} ms"
    if unit == Unit.SHARE:
        return f"{value:.0%}"
    return f"{value:,.0f}"


def days_axis(first: date, last: date) -> tuple[datetime, ...]:
    """UTC midnights from `first` to `last`, both included: a chart's axis by the day."""
    return tuple(
        datetime.combine(first + timedelta(days=offset), time.min, tzinfo=UTC)
        for offset in range((last - first).days + 1)
    )


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def requests_text(requests: int) -> str:
    return f"{requests:,} request{'' if requests == 1 else 's'}"


def csv_cell(value: float | None, unit: Unit) -> float | int | None:
    """Counts as whole numbers (the series hold floats for uPlot)."""
    if value is not None and unit == Unit.COUNT and float(value).is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[float | None, ...]  # one per point of the chart's axis; None is a gap

    @property
    def total(self) -> float:
        return sum(value for value in self.values if value is not None)


@dataclass(frozen=True)
class Chart:
    """Series over a UTC time axis of equal steps (an hour or a day)."""

    id: str  # unique on its page: the ids of its drawing, data and table derive from it
    title: str
    kind: ChartKind
    unit: Unit
    axis: tuple[datetime, ...]
    step_seconds: int
    series: tuple[Series, ...]

    @property
    def data_id(self) -> str:
        return f"{self.id}-data"

    def __post_init__(self) -> None:
        for series in self.series:
            if len(series.values) != len(self.axis):
                raise ValueError(
                    f"{self.id}: {series.label} has {len(series.values)} values for {len(self.axis)} points"
                )

    @property
    def is_empty(self) -> bool:
        return not any(value for series in self.series for value in series.values)

    @property
    def time_format(self) -> str:
        return "%b %d %H:%M" if self.step_seconds < DAY_SECONDS else "%b %d"

    @property
    def data(self) -> dict[str, object]:
        """What static/js/charts.js draws: seconds since the epoch and plain numbers."""
        return {
            "kind": self.kind.value,
            "unit": self.unit.value,
            "step": self.step_seconds,
            "x": [int(moment.timestamp()) for moment in self.axis],
            "series": [{"label": series.label, "values": list(series.values)} for series in self.series],
        }

    def csv_header(self) -> list[str]:
        return ["time_utc", *(series.label for series in self.series)]

    def csv_rows(self) -> Iterator[list[object]]:
        for index, moment in enumerate(self.axis):
            yield [iso(moment), *(csv_cell(series.values[index], self.unit) for series in self.series)]

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, **self.data}

    @property
    def rows(self) -> list[tuple[str, list[str]]]:
        return [
            (
                moment.strftime(self.time_format),
                [format_value(series.values[index], self.unit) for series in self.series],
            )
            for index, moment in enumerate(self.axis)
        ]

    @property
    def summary(self) -> str:
        """One sentence per series: its total (or range) and its peak, for screen readers."""
        if not self.axis:
            return f"{self.title}: no data."
        span = (
            f"{self.axis[0].strftime(self.time_format)} to {self.axis[-1].strftime(self.time_format)} (UTC)"
        )
        return f"{self.title}, {span}. " + " ".join(self.describe(series) for series in self.series)

    def describe(self, series: Series) -> str:
        points = [
            (value, moment)
            for value, moment in zip(series.values, self.axis, strict=True)
            if value is not None
        ]
        if not points:
            return f"{series.label}: no data."
        peak, when = max(points, key=lambda point: point[0])
        highest = f"{format_value(peak, self.unit)} at {when.strftime(self.time_format)}"
        if self.kind == ChartKind.STACKED_BARS:
            return f"{series.label}: total {format_value(series.total, self.unit)}, most {highest}."
        lowest = format_value(min(value for value, _ in points), self.unit)
        return f"{series.label}: from {lowest} to {highest}."


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | Decimal
    detail: str = ""  # shown after the value, e.g. a share or a request count


@dataclass(frozen=True)
class BarList:
    """Labelled values drawn as horizontal bars scaled to the largest, in the given order."""

    id: str
    title: str
    unit: Unit
    bars: tuple[Bar, ...]

    @classmethod
    def largest_first(cls, id: str, title: str, unit: Unit, bars: Sequence[Bar], limit: int) -> BarList:
        ordered = sorted(bars, key=lambda bar: bar.value, reverse=True)[:limit]
        return cls(id=id, title=title, unit=unit, bars=tuple(ordered))

    def csv_header(self) -> list[str]:
        return ["label", "value", "detail"]

    def csv_rows(self) -> Iterator[list[object]]:
        for bar in self.bars:
            yield [bar.label, bar.value, bar.detail]

    def as_json(self) -> dict[str, object]:
        bars = [{"label": bar.label, "value": float(bar.value), "detail": bar.detail} for bar in self.bars]
        return {"id": self.id, "title": self.title, "unit": self.unit.value, "bars": bars}

    @property
    def items(self) -> list[dict[str, object]]:
        """Each bar with its width as a percentage of the largest (CSS)."""
        largest = max((float(bar.value) for bar in self.bars), default=0.0)
        return [
            {
                "label": bar.label,
                "value": format_value(bar.value, self.unit),
                "detail": bar.detail,
                "width": round(100 * float(bar.value) / largest, 1) if largest > 0 else 0,
            }
            for bar in self.bars
        ]


@dataclass(frozen=True)
class Quota:
    label: str
    used: float | Decimal
    limit: float | Decimal | None  # None: unlimited (nothing to fill)

    @property
    def share(self) -> float | None:
        return float(self.used) / float(self.limit) if self.limit else None


@dataclass(frozen=True)
class QuotaList:
    """What is used of each limit, drawn as meters (templates/partials/quota_bars.html)."""

    id: str
    title: str
    unit_of: tuple[Unit, ...]  # one per quota
    quotas: tuple[Quota, ...]

    @property
    def items(self) -> list[dict[str, object]]:
        return [
            {
                "label": quota.label,
                "used": format_value(quota.used, unit),
                "limit": None if quota.limit is None else format_value(quota.limit, unit),
                "share": quota.share,
                "percent": None if quota.share is None else round(100 * min(quota.share, 1.0), 1),
                "over": quota.share is not None and quota.share >= 1,
            }
            for quota, unit in zip(self.quotas, self.unit_of, strict=True)
        ]

    def csv_header(self) -> list[str]:
        return ["label", "used", "limit", "share"]

    def csv_rows(self) -> Iterator[list[object]]:
        for quota in self.quotas:
            yield [quota.label, quota.used, quota.limit, quota.share]

    def as_json(self) -> dict[str, object]:
        quotas = [
            {
                "label": quota.label,
                "used": float(quota.used),
                "limit": None if quota.limit is None else float(quota.limit),
                "share": quota.share,
            }
            for quota in self.quotas
        ]
        return {"id": self.id, "title": self.title, "quotas": quotas}


class Exportable(Protocol):
    """A chart, bar list or quota list, as its data endpoints serve it."""

    @property
    def id(self) -> str: ...

    def csv_header(self) -> list[str]: ...

    def csv_rows(self) -> Iterator[list[object]]: ...

    def as_json(self) -> dict[str, object]: ...
