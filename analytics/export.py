"""A timeseries as CSV: one row per point of the API's answer, one column per
figure (`figures_json`), nested figures flattened as `latency_ms.p50`,
`errors.<type>` and `tiers.<tier>`. A figure without a value (a percentile
without requests) is an empty cell; an error type or tier a point does not
have is 0."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from io import StringIO
from typing import Any

from analytics.backends.base import Figures, figures_json

Cell = str | int | float | None


def flat(figures: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Cell]]:
    for name, value in figures.items():
        if isinstance(value, Mapping):
            yield from flat(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


# Every point has these; errors and tiers add a column per type or tier seen.
FIXED_COLUMNS = ["t", "group", *dict(flat(figures_json(Figures())))]


def timeseries_csv(points: Sequence[Mapping[str, Any]]) -> str:
    rows = [dict(flat(point)) for point in points]
    seen = sorted({name for row in rows for name in row} - set(FIXED_COLUMNS))
    out = StringIO()
    writer = csv.DictWriter(out, fieldnames=FIXED_COLUMNS + seen, restval=0, lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: "" if value is None else value for name, value in row.items()} for row in rows)
    return out.getvalue()
