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


# A spreadsheet runs a text cell starting with one of these as a formula; key and model
# names are the tenant's to choose (OWASP's "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_text(cell: object) -> object:
    """A text cell a spreadsheet would run, quoted so it shows as text; other cells as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return "" if cell is None else cell


# Every point has these; errors and tiers add a column per type or tier seen.
FIXED_COLUMNS = ["t", "group", *dict(flat(figures_json(Figures())))]


def timeseries_csv(points: Sequence[Mapping[str, Any]]) -> str:
    rows = [dict(flat(point)) for point in points]
    seen = sorted({name for row in rows for name in row} - set(FIXED_COLUMNS))
    out = StringIO()
    writer = csv.DictWriter(out, fieldnames=FIXED_COLUMNS + seen, restval=0, lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: as_text(value) for name, value in row.items()} for row in rows)
    return out.getvalue()
