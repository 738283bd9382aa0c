"""The dashboard's one way to write dates, numbers, money and JSON.

A template builtin (settings.TEMPLATES), so every page uses these filters
without loading them, and a format changes here, once, for every page.
Dates are UTC, written `2026-12-07 10:01 UTC`; numbers group thousands with
commas; JSON is indented and left to the template's escaping.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django import template

register = template.Library()
EMPTY = "\N{EN DASH}"


@register.filter
def when(value: datetime | None, empty: str = EMPTY) -> str:
    """A moment: `2026-12-07 10:01 UTC`; `empty` for none (`{{ x|when:"Never" }}`)."""
    if not isinstance(value, datetime):
        return empty
    moment = value.astimezone(UTC) if value.tzinfo is not None else value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@register.filter
def day(value: date | None, empty: str = EMPTY) -> str:
    """A day: `2026-12-07`."""
    return value.strftime("%Y-%m-%d") if isinstance(value, date) else empty


@register.filter
def number(value: str | int | float | Decimal | None, places: int = 0) -> str:
    """`12,345` (or `12,345.68` with `places`); the API's decimal strings too."""
    if value is None or value == "" or isinstance(value, bool):
        return EMPTY
    if isinstance(value, str):
        try:
            value = Decimal(value)
        except ArithmeticError:
            return EMPTY
    return f"{value:,.{int(places)}f}"


@register.filter
def usd(value: str | float | Decimal | None) -> str:
    """Dollars (the API's strings too): cents from a dollar up, four places from a
    cent, six below (a request can cost $0.000030), so no cost reads as zero."""
    if value is None or value == "":
        return EMPTY
    amount = Decimal(str(value))
    size = abs(amount)
    places = 2 if size >= 1 or size == 0 else 4 if size >= Decimal("0.01") else 6
    return f"${amount:,.{places}f}"


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON (never a Python repr); the template escapes it."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
