"""The one date, number, money and JSON format of every page (aiaas/formats.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.template import Context, Template

from aiaas.formats import EMPTY, day, number, pretty_json, usd, when


def test_a_moment_is_written_in_utc_to_the_minute() -> None:
    paris = timezone(timedelta(hours=1))

    assert when(datetime(2026, 12, 7, 11, 1, 59, tzinfo=paris)) == "2026-12-07 10:01 UTC"
    assert when(None) == EMPTY
    assert when(None, "Never") == "Never"
    assert day(date(2026, 1, 2)) == "2026-01-02"


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (0, 0, "0"),
        (1234567, 0, "1,234,567"),
        (Decimal("1234.5"), 2, "1,234.50"),
        (0.8567, 3, "0.857"),
        ("1234.5", 1, "1,234.5"),  # the API's decimal strings
        ("not a number", 0, EMPTY),
        (None, 0, EMPTY),
    ],
)
def test_numbers_group_thousands_with_commas(
    value: str | float | Decimal | None, places: int, text: str
) -> None:
    assert number(value, places) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.000000", "$0.00"),
        ("0.250000", "$0.2500"),
        (Decimal("1234.5"), "$1,234.50"),
        (0.00012, "$0.000120"),
        ("0.000030", "$0.000030"),
        (None, EMPTY),
    ],
)
def test_money_is_dollars_with_cents_and_more_places_for_smaller_amounts(
    value: str | Decimal | float | None, text: str
) -> None:
    assert usd(value) == text


def test_json_is_indented_and_escaped_by_the_template_never_a_repr() -> None:
    value = {"text": "<b>é</b>", "n": None, "ok": True, "at": datetime(2026, 1, 1, tzinfo=UTC)}

    rendered = Template("{{ value|pretty_json }}").render(Context({"value": value}))

    assert pretty_json(value) == (
        '{\n  "text": "<b>é</b>",\n  "n": null,\n  "ok": true,\n  "at": "2026-01-01 00:00:00+00:00"\n}'
    )
    assert "&lt;b&gt;" in rendered
    assert "None" not in rendered
    assert "True" not in rendered


def test_the_filters_need_no_load_tag() -> None:
    rendered = Template("{{ moment|when }} {{ count|number }}").render(
        Context({"moment": datetime(2026, 12, 7, 10, 1, tzinfo=UTC), "count": 12345})
    )

    assert rendered == "2026-12-07 10:01 UTC 12,345"
