"""Templates in specs: Jinja2's immutable sandbox, so a spec can reach its data and
nothing of Python's internals (no `__class__`, no `mro`, no unsafe callables, no
mutating `list.append`), with bounded work.

A string that is exactly one expression, `"{{ steps.classify.output }}"`,
evaluates to the value itself (a dict stays a dict); any other string renders
to text. Lists and dicts are rendered item by item.

Limits, per `render` or `evaluate` call (settings AGENT_TEMPLATE_MAX_*): its
output and every string made on the way at most MAX_OUTPUT_CHARACTERS; loop
iterations (nested ones included) at most MAX_ITERATIONS; wall time at most
MAX_SECONDS, checked at every iteration, call, attribute and operator. Calls
that would make a huge string (`ljust`, `center`, `zfill`, `replace`, `join`,
format widths, `*`, `**`, `%`, `~`, `tojson` indents) are refused before they
allocate it, and `tojson` stops as soon as its text is over the limit. A
template over a limit raises TemplateLimitError (a TemplateError): its step,
and so its run, fails with that message, and nothing else is held up.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

from django.conf import settings
from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["TemplateError", "TemplateLimitError", "check_template", "evaluate", "render"]

SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expression>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


MAX_EXPONENT = 100
MAX_INT_BITS = 10_000  # about 3,000 decimal digits
MAX_SEQUENCE_ITEMS = 10_000  # items of a list or tuple, characters of a string, made by `*`
MAX_FORMAT_WIDTH = 10_000  # a width or precision in `%` or `str.format`, a filter's width or count
ITERATION_FILTER = "_bounded_iteration"
# Filters whose int arguments are widths or counts of things they make.
WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "slice", "batch"})
# str methods whose first argument is the width of the string they make.
WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})
PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
FORMAT_NUMBER = re.compile(r"\d+")


class TemplateLimitError(SecurityError):
    """A template went over one of its limits (output, iterations, time, size)."""


@dataclass
class Budget:
    """What one rendering may still do."""

    deadline: float
    iterations_left: int
    max_characters: int
    produced: int = 0  # characters of output so far, over every template of the rendering

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            seconds = settings.AGENT_TEMPLATE_MAX_SECONDS
            raise TemplateLimitError(f"the template took longer than {seconds:g}s")

    def iterate(self) -> None:
        self.iterations_left -= 1
        if self.iterations_left < 0:
            raise TemplateLimitError(
                f"the template's loops ran more than {settings.AGENT_TEMPLATE_MAX_ITERATIONS} iterations"
            )
        self.tick()

    def check_characters(self, count: int, what: str = "a string") -> None:
        if count > self.max_characters:
            raise TemplateLimitError(f"{what} would exceed {self.max_characters} characters")


_budget: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


def budget() -> Budget:
    current = _budget.get()
    if current is None:  # fail closed: templates run only inside `limits()`
        raise TemplateLimitError("a template was run outside its limits")
    return current


@contextmanager
def limits() -> Iterator[Budget]:
    """The budget of one render or evaluate call (nested calls share it)."""
    current = _budget.get()
    if current is not None:
        yield current
        return
    fresh = Budget(
        deadline=time.monotonic() + settings.AGENT_TEMPLATE_MAX_SECONDS,
        iterations_left=settings.AGENT_TEMPLATE_MAX_ITERATIONS,
        max_characters=settings.AGENT_TEMPLATE_MAX_OUTPUT_CHARACTERS,
    )
    token = _budget.set(fresh)
    try:
        yield fresh
    finally:
        _budget.reset(token)


def check_size(value: Any) -> Any:
    """`value`, if it is not a string or collection over the size limit."""
    if isinstance(value, (str, bytes)):
        budget().check_characters(len(value))
    elif isinstance(value, (list, tuple, dict, set, frozenset)) and len(value) > budget().max_characters:
        raise TemplateLimitError(f"a collection would exceed {budget().max_characters} items")
    return value


def bounded_iteration(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, each counted against the budget (`{% for %}` iterates through this)."""
    current = budget()
    for item in iterable:
        current.iterate()
        yield item


class BoundedCodeGenerator(CodeGenerator):
    """`~` concatenation through the environment, which checks the size first."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 (Jinja's name)
        self.write("environment.concatenate((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class SpecEnvironment(ImmutableSandboxedEnvironment):
    """`input.items` is the input's `items` key, not dict.items: data wins over methods.

    `*`, `**` and `%` are intercepted (Jinja then never folds them at compile time
    either, where `{{ 7 ** 10000 }}` would fail and `{{ "x" * 10**9 }}` exhaust
    memory) and refused when their result would be huge; so are calls, filters,
    loops and `~` (see the module's docstring).
    """

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name in ("lipsum", "cycler", "joiner"):
            self.globals.pop(name, None)
        self.filters = {name: bounded_filter(name, function) for name, function in self.filters.items()}
        self.filters[ITERATION_FILTER] = bounded_iteration
        self.policies["json.dumps_function"] = bounded_json_dumps

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, ITERATION_FILTER, [], [], None, None, lineno=loop.iter.lineno)
        return tree

    def concatenate(self, values: tuple[Any, ...]) -> str:
        parts = [check_size(str(value)) for value in values]
        budget().check_characters(sum(map(len, parts)), "a concatenation")
        return "".join(parts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget().tick()
        if operator == "**":
            check_power(left, right)
        elif operator == "*":
            check_product(left, right)
        elif operator == "%" and isinstance(left, str):
            check_percent_format(left)
        return check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget().tick()
        for argument in (*args, *kwargs.values()):
            check_size(argument)
        check_method_call(__obj, args)
        return check_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget().tick()
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget().tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        check_format_string(value.__self__)
        return wrapper


def bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, refusing huge widths and counts before it runs and huge results after."""

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget().tick()
        arguments = (*args, *kwargs.values())
        if name in WIDTH_FILTERS:
            for argument in arguments:
                check_width(argument, f"the {name} filter's width or count")
        if name == "tojson":  # (eval context, value, indent): json.dumps indents every value
            indent = kwargs.get("indent", args[2] if len(args) > 2 else None)
            check_width(indent, "the tojson filter's indent")
        if name == "format" and arguments and isinstance(arguments[0], str):
            check_percent_format(arguments[0])
        if name == "join":
            check_join(arguments)
        if name == "replace":
            strings = [argument for argument in arguments if isinstance(argument, str)]
            if len(strings) >= 3:  # the filter may take the eval context first
                check_replace(*strings[-3:])
        return check_size(function(*args, **kwargs))

    return bounded


def bounded_json_dumps(value: Any, **options: Any) -> str:
    """json.dumps for the tojson filter, stopped as soon as its text passes the
    output limit: an indent repeats on every line, so the text can be far larger
    than the value."""
    current, size, parts = budget(), 0, []
    for part in json.JSONEncoder(**options).iterencode(value):
        size += len(part)
        current.check_characters(size, "the tojson filter's result")
        current.tick()
        parts.append(part)
    return "".join(parts)


def check_join(arguments: tuple[Any, ...]) -> None:
    """The join filter's (value, separator) as the filter receives them, after the eval context."""
    for index, value in enumerate(arguments):
        if isinstance(value, (list, tuple)):
            rest = arguments[index + 1 :]
            separator = rest[0] if rest and isinstance(rest[0], str) else ""
            total = sum(len(str(item)) for item in value) + len(separator) * max(len(value) - 1, 0)
            budget().check_characters(total, "the join filter's result")
            return


def check_width(value: Any, what: str) -> None:
    if isinstance(value, int) and value > MAX_FORMAT_WIDTH:
        raise TemplateLimitError(f"{what} {value} is over {MAX_FORMAT_WIDTH}")
    if isinstance(value, str) and len(value) > MAX_FORMAT_WIDTH:
        raise TemplateLimitError(f"{what} is longer than {MAX_FORMAT_WIDTH} characters")


def check_method_call(method: Any, args: tuple[Any, ...]) -> None:
    """Refuse a str method call whose result would be huge, before it is made."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(method, "__name__", "")
    if name in WIDTH_METHODS and args:
        check_width(args[0], f"the width of {name}()")
    elif name == "expandtabs" and args and isinstance(args[0], int):
        budget().check_characters(len(owner) * max(args[0], 1), "expandtabs()")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        check_replace(owner, args[0], args[1])
    elif name == "join" and args and isinstance(args[0], (list, tuple)):
        total = sum(len(item) for item in args[0] if isinstance(item, str))
        budget().check_characters(total + len(owner) * max(len(args[0]) - 1, 0), "join()")


def check_replace(text: str, old: str, new: str) -> None:
    occurrences = len(text) + 1 if old == "" else text.count(old)
    growth = occurrences * max(len(new) - len(old), 0)
    budget().check_characters(len(text) + growth, "replace()")


def check_percent_format(template: str) -> None:
    for match in PERCENT_SPEC.finditer(template):
        for number in match.groups():
            if number == "*" or (number is not None and int(number) > MAX_FORMAT_WIDTH):
                raise TemplateLimitError(f"a % format width or precision over {MAX_FORMAT_WIDTH}")


def check_format_string(template: str) -> None:
    """str.format: no width or precision over the limit, none taken from arguments."""
    plain = template.replace("{{", "").replace("}}", "")
    if re.search(r"\{[^{}]*\{", plain):
        raise TemplateLimitError("nested replacement fields in str.format are not allowed")
    for field in re.findall(r"\{[^{}]*\}", plain):
        if any(int(number) > MAX_FORMAT_WIDTH for number in FORMAT_NUMBER.findall(field.partition(":")[2])):
            raise TemplateLimitError(f"a str.format width or precision over {MAX_FORMAT_WIDTH}")


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
    with limits():
        result = check_size(_expression(source)(**context))
    if isinstance(result, StrictUndefined):
        str(result)  # raises UndefinedError naming what is missing
    return result


def render(value: Any, context: dict[str, Any]) -> Any:
    """`value` with every template string in it rendered against `context`, within
    one budget of output, iterations and time."""
    with limits():
        return render_within(value, context)


def render_within(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if SINGLE_EXPRESSION.match(value):
            return evaluate(value, context)
        if "{" not in value:
            return value
        return render_text(_template(value), context)
    if isinstance(value, list):
        return [render_within(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render_within(item, context) for key, item in value.items()}
    return value


def render_text(template: Any, context: dict[str, Any]) -> str:
    """The template's output, stopped as soon as the rendering's output passes the limit."""
    current, chunks = budget(), []
    for chunk in template.generate(**context):
        current.produced += len(chunk)
        current.check_characters(current.produced, "the template's output")
        chunks.append(chunk)
    return "".join(chunks)
