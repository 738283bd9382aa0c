"""A timeseries as CSV: one row per point the API returns, one column per
figure of `figures_json` (the API's shape), nested figures flattened as
`latency_ms.p50`, `errors.<type>` and `tiers.<tier>`. A figure without a value
(a percentile without requests) is an empty cell; an error type or tier a
point does not have is 0."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from io import StringIO

from analytics.backends.base import Figures, Point, figures_json

Cell = str | int | float | None


def flat(figures: dict[str, object], prefix: str = "") -> Iterator[tuple[str, Cell]]:
    for name, value in figures.items():
        if isinstance(value, dict):
            yield from flat(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value  # type: ignore[misc]


# Every point has these; errors and tiers add a column per type or tier seen.
FIXED_COLUMNS = ["t", "group", *dict(flat(figures_json(Figures())))]


def point_row(point: Point) -> dict[str, Cell]:
    return {"t": point.t.isoformat(), "group": point.group, **dict(flat(figures_json(point.figures)))}


def timeseries_csv(points: Sequence[Point]) -> str:
    rows = [point_row(point) for point in points]
    seen = sorted({name for row in rows for name in row} - set(FIXED_COLUMNS))
    out = StringIO()
    writer = csv.DictWriter(out, fieldnames=FIXED_COLUMNS + seen, restval=0, lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: "" if value is None else value for name, value in row.items()} for row in rows)
    return out.getvalue()
