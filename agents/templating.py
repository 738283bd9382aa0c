"""Templates in specs: Jinja2's sandbox, so a spec can reach its data and nothing
of Python's internals (no `__class__`, no `mro`, no unsafe callables).

A string that is exactly one expression, `"{{ steps.classify.output }}"`,
evaluates to the value itself (a dict stays a dict); any other string renders
to text. Lists and dicts are rendered item by item.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["TemplateError", "check_template", "evaluate", "render"]

SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expression>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


class SpecEnvironment(SandboxedEnvironment):
    """`input.items` is the input's `items` key, not dict.items: data wins over methods."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


ENVIRONMENT = SpecEnvironment(undefined=StrictUndefined, autoescape=False)


@lru_cache(maxsize=1024)
def _expression(source: str) -> Any:
    return ENVIRONMENT.compile_expression(source, undefined_to_none=False)


@lru_cache(maxsize=1024)
def _template(source: str) -> Any:
    return ENVIRONMENT.from_string(source)


def check_template(value: Any) -> None:
    """Raise TemplateError if any string in `value` is not a valid template."""
    if isinstance(value, str):
        match = SINGLE_EXPRESSION.match(value)
        if match:
            _expression(match["expression"])
        elif "{" in value:
            _template(value)
    elif isinstance(value, list):
        for item in value:
            check_template(item)
    elif isinstance(value, dict):
        for item in value.values():
            check_template(item)


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """A bare expression (`input.items`, `steps.x.output.label == "bug"`) or a
    `{{ ... }}` template, evaluated to its value."""
    match = SINGLE_EXPRESSION.match(expression)
    source = match["expression"] if match else expression
    result = _expression(source)(**context)
    if isinstance(result, StrictUndefined):
        str(result)  # raises UndefinedError naming what is missing
    return result


def render(value: Any, context: dict[str, Any]) -> Any:
    """`value` with every template string in it rendered against `context`."""
    if isinstance(value, str):
        if SINGLE_EXPRESSION.match(value):
            return evaluate(value, context)
        if "{" not in value:
            return value
        return _template(value).render(**context)
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    return value
