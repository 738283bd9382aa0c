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
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["TemplateError", "check_template", "evaluate", "render"]

SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expression>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


MAX_EXPONENT = 100
MAX_INT_BITS = 10_000  # about 3,000 decimal digits
MAX_SEQUENCE_ITEMS = 10_000  # items of a list or tuple, characters of a string


class SpecEnvironment(SandboxedEnvironment):
    """`input.items` is the input's `items` key, not dict.items: data wins over methods.

    `*` and `**` are intercepted (Jinja then never folds them at compile time either,
    where `{{ 7 ** 10000 }}` would fail and `{{ "x" * 10**9 }}` exhaust memory) and
    refused when their result would be huge.
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            check_power(left, right)
        elif operator == "*":
            check_product(left, right)
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def check_power(base: Any, exponent: Any) -> None:
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool) and abs(exponent) > MAX_EXPONENT:
        raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed")
    if isinstance(exponent, int) and int_bits(base) * abs(exponent) > MAX_INT_BITS:
        raise SecurityError(f"the power would exceed {MAX_INT_BITS} bits")


def check_product(left: Any, right: Any) -> None:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, (str, list, tuple, bytes)) and isinstance(times, int):
            if len(sequence) * max(times, 0) > MAX_SEQUENCE_ITEMS:
                raise SecurityError(f"the product would exceed {MAX_SEQUENCE_ITEMS} items or characters")
            return
    if int_bits(left) + int_bits(right) > MAX_INT_BITS:
        raise SecurityError(f"the product would exceed {MAX_INT_BITS} bits")


ENVIRONMENT = SpecEnvironment(undefined=StrictUndefined, autoescape=False)


@lru_cache(maxsize=1024)
def _expression(source: str) -> Any:
    return ENVIRONMENT.compile_expression(source, undefined_to_none=False)


@lru_cache(maxsize=1024)
def _template(source: str) -> Any:
    return ENVIRONMENT.from_string(source)


def check_template(value: Any) -> None:
    """Raise TemplateError if any string in `value` is not a valid template (any
    failure of the compiler, not only a syntax error, is a TemplateError)."""
    if isinstance(value, str):
        match = SINGLE_EXPRESSION.match(value)
        try:
            if match:
                _expression(match["expression"])
            elif "{" in value:
                _template(value)
        except TemplateError:
            raise
        except Exception as error:  # RecursionError from deep nesting, ValueError, ...
            raise TemplateError(f"the template cannot be compiled: {type(error).__name__}: {error}") from None
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
