"""The chart layer (aiaas/charts.py, templates/partials/chart.html and
bar_list.html, static/js/charts.js): every chart says its figures as a table
and a summary, and its files are served from static/ with uPlot's licence."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.test import Client, override_settings

from aiaas.charts import DAY_SECONDS, Bar, BarList, Chart, ChartKind, Series, Unit, days_axis, format_value

PRODUCTION_STATIC_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"  # STATIC_MANIFEST=true
AXIS = days_axis(date(2026, 12, 1), date(2026, 12, 3))


def spend_chart() -> Chart:
    return Chart(
        "chart-spend",
        "Spend per day by model",
        ChartKind.STACKED_BARS,
        Unit.USD,
        AXIS,
        DAY_SECONDS,
        (Series("sim-small", (0.5, 0.0, 0.25)), Series("sim-large", (1.0, 2.0, 0.0))),
    )


def test_a_days_axis_is_utc_midnights_both_ends_included() -> None:
    assert [moment.isoformat() for moment in AXIS] == [
        "2026-12-01T00:00:00+00:00",
        "2026-12-02T00:00:00+00:00",
        "2026-12-03T00:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, Unit.MILLISECONDS, "\N{EN DASH}"),
        (Decimal("0.0000461"), Unit.USD, "$0.000046"),
        (1234.56, Unit.MILLISECONDS, "1,234.6 ms"),
        (0.4, Unit.SHARE, "40%"),
        (12345, Unit.COUNT, "12,345"),
    ],
)
def test_figures_are_formatted_one_way(value: float | Decimal | None, unit: Unit, text: str) -> None:
    assert format_value(value, unit) == text


def test_a_chart_gives_the_script_epoch_seconds_and_plain_numbers() -> None:
    assert spend_chart().data == {
        "kind": "stacked-bars",
        "unit": "usd",
        "step": 86400,
        "x": [1796083200, 1796169600, 1796256000],
        "series": [
            {"label": "sim-small", "values": [0.5, 0.0, 0.25]},
            {"label": "sim-large", "values": [1.0, 2.0, 0.0]},
        ],
    }


def test_a_chart_summary_names_each_series_total_and_peak() -> None:
    assert spend_chart().summary == (
        "Spend per day by model, Dec 01 to Dec 03 (UTC). "
        "sim-small: total $0.750000, most $0.500000 at Dec 01. "
        "sim-large: total $3.000000, most $2.000000 at Dec 02."
    )


def test_a_line_summary_gives_the_range_and_skips_gaps() -> None:
    axis = (datetime(2026, 12, 1, 10, tzinfo=UTC), datetime(2026, 12, 1, 11, tzinfo=UTC))
    chart = Chart(
        "chart-latency",
        "Latency",
        ChartKind.LINE,
        Unit.MILLISECONDS,
        axis,
        3600,
        (Series("p50", (None, 120.0)), Series("p99", (None, None))),
    )

    assert (
        chart.summary == "Latency, Dec 01 10:00 to Dec 01 11:00 (UTC). "
        "p50: from 120.0 ms to 120.0 ms at Dec 01 11:00. p99: no data."
    )
    assert chart.rows == [
        ("Dec 01 10:00", ["\N{EN DASH}", "\N{EN DASH}"]),
        ("Dec 01 11:00", ["120.0 ms", "\N{EN DASH}"]),
    ]


def test_a_series_must_have_a_value_for_each_point() -> None:
    with pytest.raises(ValueError, match="chart-x: short has 2 values for 3 points"):
        Chart("chart-x", "X", ChartKind.LINE, Unit.COUNT, AXIS, DAY_SECONDS, (Series("short", (1.0, 2.0)),))


def test_the_chart_partial_renders_the_table_the_summary_and_the_data() -> None:
    html = render_to_string("partials/chart.html", {"chart": spend_chart()})

    assert '<figure class="chart" id="chart-spend" data-chart="chart-spend-data">' in html
    assert f'role="img" aria-label="{spend_chart().summary}" hidden' in html
    assert '<details class="chart-table" open>' in html
    assert re.findall(r"<th scope=\"col\">([^<]+)</th>", html) == ["Time (UTC)", "sim-small", "sim-large"]
    assert '<tr><th scope="row">Dec 02</th><td>$0.000000</td><td>$2.000000</td></tr>' in html
    data = re.search(r'<script id="chart-spend-data" type="application/json">(.*?)</script>', html)
    assert data is not None
    assert json.loads(data.group(1)) == spend_chart().data


def test_an_empty_chart_says_why_and_draws_nothing() -> None:
    chart = Chart(
        "chart-empty",
        "Errors",
        ChartKind.STACKED_BARS,
        Unit.COUNT,
        AXIS,
        DAY_SECONDS,
        (Series("5xx", (0, 0, 0)),),
    )

    html = render_to_string("partials/chart.html", {"chart": chart, "empty": "No errors in this range."})

    assert '<p class="muted chart-empty">No errors in this range.</p>' in html
    assert "<script" not in html
    assert "<table" not in html


def test_a_bar_list_is_largest_first_scaled_to_the_largest() -> None:
    bars = BarList.largest_first(
        "keys",
        "Top keys",
        Unit.USD,
        [
            Bar("ci", Decimal("0.5"), "2 requests"),
            Bar("prod", Decimal("2"), "9 requests"),
            Bar("old", Decimal(0)),
        ],
        limit=2,
    )

    assert bars.items == [
        {"label": "prod", "value": "$2.000000", "detail": "9 requests", "width": 100.0},
        {"label": "ci", "value": "$0.500000", "detail": "2 requests", "width": 25.0},
    ]
    html = render_to_string("partials/bar_list.html", {"bars": bars})
    assert '<span class="bar-label">ci</span>' in html
    assert 'width="25.0%"' in html


@pytest.mark.parametrize(
    ("path", "starts_with"),
    [
        ("/static/vendor/uplot/uPlot.iife.min.js", b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */"),
        ("/static/vendor/uplot/LICENSE", b"The MIT License (MIT)"),
        ("/static/vendor/uplot/uPlot.min.css", b".uplot"),
        ("/static/js/charts.js", b"// Draws the charts"),
    ],
)
def test_the_chart_files_are_served_from_static(db: None, path: str, starts_with: bytes) -> None:
    response = Client(HTTP_HOST="alpha.localhost").get(path)

    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(starts_with)  # type: ignore[attr-defined]


def test_collectstatic_hashes_the_chart_files_for_the_production_manifest(tmp_path: Path) -> None:
    storages = {**settings.STORAGES, "staticfiles": {"BACKEND": PRODUCTION_STATIC_STORAGE}}
    with override_settings(STORAGES=storages, STATIC_ROOT=tmp_path):
        call_command("collectstatic", interactive=False, verbosity=0)
        page = render_to_string("dashboard/base.html", {"request": None})
        urls = [
            static(name)
            for name in ("vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css", "js/charts.js")
        ]

    for url in urls:
        assert re.fullmatch(r"/static/[\w/.-]+\.[0-9a-f]{12}\.(js|css)", url), url
        assert url in page
        assert (tmp_path / url.removeprefix("/static/")).is_file()
    assert (tmp_path / "vendor" / "uplot" / "LICENSE").is_file()
