"""Deterministic assertions: the output compared with a value, a pattern, a schema
or a limit, with no call made. The same observation always gets the same score.

Where a spec leaves its `value` out, the case's `expected` is used; a case with
neither fails with that reason. An output is text (a chat answer) or a JSON
value (an agent's output): the text assertions read a JSON value as its
canonical JSON, and the JSON assertions parse text as JSON. Patterns and
schemas are the tenant's, so they run with bounded work (aiaas/json_schema.py:
Rust's linear-time regex engine, no remote references).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from aiaas.json_schema import InvalidSchemaError, Validator, compile_schema, first_error
from evals.scorers import JudgeContext, Observation, Score, jsonpath
from evals.scorers.specs import Arguments, is_number

MISSING: Any = object()
NO_VALUE = "nothing to compare with: the spec has no `value` and the case no `expected`"


class NotJsonError(ValueError):
    pass


@dataclass(frozen=True)
class Assertion:
    name: str
    weight: float

    def verdict(self, passed: bool, reason: str, score: float | None = None) -> Score:
        value = (1.0 if passed else 0.0) if score is None else score
        return Score(self.name, value, passed, reason, weight=self.weight)

    def failure(self, reason: str) -> Score:
        return self.verdict(False, reason)


def text_of(output: Any) -> str:
    if isinstance(output, str):
        return output
    return orjson.dumps(output, option=orjson.OPT_SORT_KEYS).decode()


def json_of(output: Any) -> Any:
    """The output as a JSON value: text is parsed, anything else is one already."""
    if not isinstance(output, str):
        return output
    try:
        return orjson.loads(output)
    except orjson.JSONDecodeError as error:
        raise NotJsonError(f"the output is not JSON: {error}") from None


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: 1 equals 1.0, but true is not 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return type(left) is type(right) and left == right


def quoted(value: Any, limit: int = 200) -> str:
    text = text_of(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


@dataclass(frozen=True)
class Equals(Assertion):
    """Text equal to a string (optionally ignoring case and runs of whitespace),
    or a JSON value equal to a non-string value."""

    value: Any
    ignore_case: bool
    ignore_whitespace: bool

    @classmethod
    def from_spec(cls, args: Arguments) -> Equals:
        value = args.raw("value") if args.has("value") else MISSING
        return cls(
            args.name(), args.weight(), value, args.boolean("ignore_case"), args.boolean("ignore_whitespace")
        )

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        wanted = self.value if self.value is not MISSING else observation.expected
        if self.value is MISSING and wanted is None:
            return self.failure(NO_VALUE)
        if isinstance(wanted, str):
            passed = self.normal(text_of(observation.output)) == self.normal(wanted)
        else:
            try:
                passed = json_equal(json_of(observation.output), wanted)
            except NotJsonError as error:
                return self.failure(str(error))
        if passed:
            return self.verdict(True, "equal")
        return self.failure(f"expected {quoted(wanted)}, got {quoted(observation.output)}")

    def normal(self, text: str) -> str:
        if self.ignore_whitespace:
            text = " ".join(text.split())
        return text.casefold() if self.ignore_case else text


@dataclass(frozen=True)
class Contains(Assertion):
    """The output's text holds the values: all of them (`mode: all`, the default) or
    any one (`mode: any`); `not_contains` holds none. The score is the share of
    values found (all), or of values absent (not_contains)."""

    values: tuple[str, ...] | None
    mode: str
    ignore_case: bool
    negated: bool = False

    @classmethod
    def from_spec(cls, args: Arguments, *, negated: bool = False) -> Contains:
        if args.has("value") and args.has("values"):
            raise args.error("give `value` or `values`, not both")
        values = (args.string("value"),) if args.has("value") else args.strings("values")
        mode = "any" if negated else args.choice("mode", ("all", "any"), default="all")
        return cls(args.name(), args.weight(), values, mode, args.boolean("ignore_case"), negated)

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        values = self.values or expected_strings(observation.expected)
        if not values:
            return self.failure(NO_VALUE + " (a string or a list of strings)")
        text = self.normal(text_of(observation.output))
        found = [value for value in values if self.normal(value) in text]
        missing = [value for value in values if value not in found]
        if self.negated:
            reason = f"found {found!r}" if found else "none found"
            return self.verdict(not found, reason, len(missing) / len(values))
        if self.mode == "any":
            return self.verdict(bool(found), f"found {found!r}" if found else f"none of {missing!r} found")
        return self.verdict(
            not missing, f"missing {missing!r}" if missing else "all found", len(found) / len(values)
        )

    def normal(self, text: str) -> str:
        return text.casefold() if self.ignore_case else text


def expected_strings(expected: Any) -> tuple[str, ...]:
    if isinstance(expected, str) and expected:
        return (expected,)
    if isinstance(expected, list) and expected and all(isinstance(item, str) and item for item in expected):
        return tuple(expected)
    return ()


@dataclass(frozen=True)
class Regex(Assertion):
    """The output's text matches the pattern somewhere (anchor it with ^ and $ for
    the whole text). Rust regex syntax: no lookaround or backreferences."""

    pattern: str
    validator: Validator = field(compare=False, repr=False)

    @classmethod
    def from_spec(cls, args: Arguments) -> Regex:
        pattern = args.string("pattern")
        flags = "(?i)" if args.boolean("ignore_case") else ""
        try:
            validator = compile_schema({"type": "string", "pattern": flags + pattern})
        except InvalidSchemaError:
            raise args.error(
                "`pattern` is not a regular expression this engine runs (Rust regex syntax: "
                "no lookaround or backreferences)"
            ) from None
        return cls(args.name(), args.weight(), pattern, validator)

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        if self.validator.is_valid(text_of(observation.output)):
            return self.verdict(True, f"matches {self.pattern!r}")
        return self.failure(f"does not match {self.pattern!r}")


@dataclass(frozen=True)
class JsonValid(Assertion):
    @classmethod
    def from_spec(cls, args: Arguments) -> JsonValid:
        return cls(args.name(), args.weight())

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        try:
            json_of(observation.output)
        except NotJsonError as error:
            return self.failure(str(error))
        return self.verdict(True, "valid JSON")


@dataclass(frozen=True)
class JsonSchema(Assertion):
    """The output, as JSON, is valid against the spec's `schema`."""

    validator: Validator = field(compare=False, repr=False)

    @classmethod
    def from_spec(cls, args: Arguments) -> JsonSchema:
        try:
            validator = compile_schema(args.json_object("schema"))
        except InvalidSchemaError as error:
            where = jsonpath.render(error.path)
            raise args.error(f"`schema` is not a JSON Schema we run (at {where}): {error.message}") from None
        return cls(args.name(), args.weight(), validator)

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        try:
            document = json_of(observation.output)
        except NotJsonError as error:
            return self.failure(str(error))
        problem = first_error(self.validator, document)
        if problem is None:
            return self.verdict(True, "valid against the schema")
        path, message = problem
        return self.failure(f"at {jsonpath.render(path)}: {message}")


@dataclass(frozen=True)
class JsonPathEquals(Assertion):
    """The value at `path` in the output (as JSON) equals `value` (or `expected`)."""

    path: str
    steps: tuple[jsonpath.Step, ...]
    value: Any

    @classmethod
    def from_spec(cls, args: Arguments) -> JsonPathEquals:
        path = args.string("path")
        value = args.raw("value") if args.has("value") else MISSING
        try:
            steps = jsonpath.parse(path)
        except jsonpath.InvalidPathError as error:
            raise args.error(f"`path` is not a JSONPath we read: {error}") from None
        return cls(args.name(), args.weight(), path, steps, value)

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        wanted = self.value if self.value is not MISSING else observation.expected
        if self.value is MISSING and wanted is None:
            return self.failure(NO_VALUE)
        try:
            found = jsonpath.resolve(json_of(observation.output), self.steps)
        except (NotJsonError, jsonpath.PathNotFoundError) as error:
            return self.failure(str(error))
        if json_equal(found, wanted):
            return self.verdict(True, f"{self.path} equals {quoted(wanted)}")
        return self.failure(f"{self.path}: expected {quoted(wanted)}, got {quoted(found)}")


@dataclass(frozen=True)
class Numeric(Assertion):
    """A number (the output, or the value at `path`) within `tolerance` (absolute) or
    `relative_tolerance` (a share of the wanted value) of `value` (or `expected`)."""

    value: float | None
    steps: tuple[jsonpath.Step, ...] | None
    tolerance: float
    relative_tolerance: float

    @classmethod
    def from_spec(cls, args: Arguments) -> Numeric:
        value = args.optional_number("value")
        steps = None
        if args.has("path"):
            try:
                steps = jsonpath.parse(args.string("path"))
            except jsonpath.InvalidPathError as error:
                raise args.error(f"`path` is not a JSONPath we read: {error}") from None
        tolerance = args.number("tolerance", default=0.0)
        relative = args.number("relative_tolerance", default=0.0)
        return cls(args.name(), args.weight(), value, steps, tolerance, relative)

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        wanted = observation.expected if self.value is None else self.value
        if not is_number(wanted):
            return self.failure(
                "nothing to compare with: the spec has no `value` and the case's `expected` is not a number"
            )
        try:
            actual = self.actual(observation.output)
        except (NotJsonError, jsonpath.PathNotFoundError, ValueError) as error:
            return self.failure(str(error))
        allowed = max(self.tolerance, self.relative_tolerance * abs(wanted))
        difference = abs(actual - wanted)
        reason = f"{actual:g} vs {wanted:g}: off by {difference:g}, allowed {allowed:g}"
        return self.verdict(difference <= allowed, reason)

    def actual(self, output: Any) -> float:
        found = output if self.steps is None else jsonpath.resolve(json_of(output), self.steps)
        if isinstance(found, str):
            try:
                found = float(found.strip())
            except ValueError:
                raise ValueError(f"not a number: {quoted(found)}") from None
        if not is_number(found):
            raise ValueError(f"not a number: {quoted(found)}")
        return float(found)


@dataclass(frozen=True)
class MaxLatency(Assertion):
    limit_ms: float

    @classmethod
    def from_spec(cls, args: Arguments) -> MaxLatency:
        return cls(args.name(), args.weight(), args.number("value"))

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        passed = observation.latency_ms <= self.limit_ms
        return self.verdict(passed, f"{observation.latency_ms} ms, limit {self.limit_ms:g} ms")


@dataclass(frozen=True)
class MaxCost(Assertion):
    limit_usd: Decimal

    @classmethod
    def from_spec(cls, args: Arguments) -> MaxCost:
        return cls(args.name(), args.weight(), args.decimal("value"))

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        passed = observation.cost_usd <= self.limit_usd
        return self.verdict(passed, f"${observation.cost_usd} vs limit ${self.limit_usd}")
