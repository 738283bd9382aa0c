"""The template sandbox: arithmetic that would make huge values is refused, at run
time, as a TemplateError (never folded, never a crash while compiling); template
bombs (nested loops, padding methods, format widths, doubling) are stopped by
the output, iteration and time limits before they allocate or spin."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jinja2.exceptions import SecurityError
from pytest_django import Settings

from agents.templating import TemplateError, TemplateLimitError, check_template, render

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


BOMBS = [
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% for i in input.items %}{% for j in input.items %}{% endfor %}{% endfor %}done",
    "{% for i in range(100000) %}{{ input.text }}{% endfor %}",
    "{{ 'x'.ljust(10 ** 9) }}",
    "{{ 'x'.center(input.n) }}",
    "{{ 'x'.zfill(input.n) }}",
    "{{ 'x' | center(10 ** 9) }}",
    "{{ ('x' * 10000) | indent(100000) }}",
    "{{ [1] | slice(10 ** 9) | list }}",
    "{{ input.text.replace('a', input.text) }}",
    "{{ input.text | replace('a', input.text) }}",
    "{{ input.text.expandtabs(10 ** 9) }}",
    "{{ input.items | join(input.text) }}",
    "{{ '%999999999s' % 1 }}",
    "{{ '%*s' % (10 ** 9, 1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:>{}}'.format(1, 10 ** 9) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% macro double(s) %}{{ double(s ~ s) }}{% endmacro %}{{ double('x') }}",
    "{{ '%(a)999999999s' % {'a': 1} }}",
    "{{ {'a': 1} | tojson(indent=10 ** 9) }}",
    "{{ [[input.items, input.items]] | tojson(indent=10000) }}",
]
BOMB_CONTEXT = {"input": {"items": list(range(5000)), "text": "a" * 5000, "n": 10**9}}


@pytest.mark.parametrize("template", BOMBS)
def test_a_template_bomb_is_refused_quickly_with_a_limit_error(template: str) -> None:
    check_template(template)
    started = time.monotonic()

    with pytest.raises(TemplateLimitError):
        render(template, BOMB_CONTEXT)

    assert time.monotonic() - started < 1.0


def test_a_template_over_its_time_limit_is_stopped(settings: Settings) -> None:
    settings.AGENT_TEMPLATE_MAX_SECONDS = 0.05
    settings.AGENT_TEMPLATE_MAX_ITERATIONS = 10**9
    started = time.monotonic()

    with pytest.raises(TemplateLimitError, match=r"took longer than 0\.05s"):
        render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {})

    assert time.monotonic() - started < 0.5


def test_the_sandbox_is_immutable() -> None:
    with pytest.raises(SecurityError):
        render("{{ input.items.append(1) }}", {"input": {"items": [1]}})


def test_ordinary_loops_filters_and_formats_still_work() -> None:
    template = (
        "{% for i in input.items[:3] %}{{ loop.index }}{{ i }}{% endfor %} {{ '%5.2f' % 3.14159 }}"
        " {{ '{:>3}'.format('a') }} {{ 'a b' | replace('a', 'c') }} {{ 'ab' | center(6) }}|"
        " {{ [1, 2] | join(',') }} {{ 'x'.ljust(3) }}|{{ 'a' ~ 'b' }}"
    )

    assert render(template, BOMB_CONTEXT) == "102132  3.14   a c b   ab  | 1,2 x  |ab"


def test_tojson_still_sorts_escapes_and_indents() -> None:
    template = "{{ {'b': 1, 'a': '<'} | tojson }} {{ [1] | tojson(indent=2) }}"

    assert render(template, {}) == '{"a": "\\u003c", "b": 1} [\n  1\n]'


def test_the_output_limit_counts_every_string_of_one_rendering(settings: Settings) -> None:
    settings.AGENT_TEMPLATE_MAX_OUTPUT_CHARACTERS = 100
    rendered = render(["a: {{ 'a' * 50 }}", "b: {{ 'b' * 40 }}"], {})

    with pytest.raises(TemplateLimitError, match="output would exceed 100 characters"):
        render(["a: {{ 'a' * 60 }}", "b: {{ 'b' * 60 }}"], {})

    assert rendered == ["a: " + "a" * 50, "b: " + "b" * 40]
