"""The template sandbox: arithmetic that would make huge values is refused, at run
time, as a TemplateError (never folded, never a crash while compiling)."""

from __future__ import annotations

from typing import Any

import pytest

from agents.templating import TemplateError, check_template, render

HUGE = [
    "{{ 7 ** 10000 }}",
    '{{ "x" * 10 ** 9 }}',
    "{{ [0] * 100000000 }}",
    "{{ (2 ** 100) ** 100 }}",
    "{{ input.a ** input.b }}",
    "{{ input.text * input.b }}",
    "text {{ 7 ** 10000 }} around",
]


@pytest.mark.parametrize("template", HUGE)
def test_huge_results_are_refused_when_rendered(template: str) -> None:
    check_template(template)  # compiles: nothing is evaluated at compile time

    with pytest.raises(TemplateError):
        render(template, {"input": {"a": 9, "b": 99_999, "text": "abc"}})


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("{{ 2 ** 10 }}", 1024),
        ("{{ [1, 2] * 2 }}", [1, 2, 1, 2]),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ 6 * 7 }}", 42),
    ],
)
def test_ordinary_arithmetic_still_works(template: str, value: Any) -> None:
    assert render(template, {}) == value


def test_any_failure_to_compile_is_a_template_error() -> None:
    with pytest.raises(TemplateError):
        check_template("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}")  # RecursionError in the parser
