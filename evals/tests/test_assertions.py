"""The deterministic assertions: each passes and fails where it should, and a bad
spec is refused when it is built, with a message naming the spec and the argument."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any, cast

import pytest

from evals.scorers import JudgeContext, Observation, Score, ScorerSpecError, build, combine

NO_CALLS = JudgeContext(gateway=cast(Any, None), api_key=cast(Any, None), request_id_prefix="req_test")


def observe(output: Any, expected: Any = None, *, latency_ms: int = 100, cost: str = "0.001") -> Observation:
    return Observation(
        case_key="case-1",
        input={"messages": [{"role": "user", "content": "hi"}]},
        expected=expected,
        output=output,
        latency_ms=latency_ms,
        cost_usd=Decimal(cost),
    )


def score(spec: dict[str, Any], observation: Observation) -> Score:
    (scorer,) = build([spec])
    return asyncio.run(scorer.score(observation, NO_CALLS))


def passes(spec: dict[str, Any], output: Any, expected: Any = None) -> bool:
    return score(spec, observe(output, expected)).passed


def test_equals_compares_with_the_value_or_the_cases_expected() -> None:
    assert passes({"type": "equals", "value": "Paris"}, "Paris")
    assert not passes({"type": "equals", "value": "Paris"}, "paris")
    assert passes({"type": "equals"}, "Paris", expected="Paris")
    result = score({"type": "equals"}, observe("Lyon", "Paris"))
    assert (result.passed, result.score, result.reason) == (False, 0.0, "expected 'Paris', got 'Lyon'")


def test_equals_can_ignore_case_and_whitespace() -> None:
    spec = {"type": "equals", "value": "New  York", "ignore_case": True, "ignore_whitespace": True}
    assert passes(spec, " new york\n")
    assert not passes({"type": "equals", "value": "New York", "ignore_case": True}, "new  york")


def test_equals_compares_json_values_when_the_expected_is_not_a_string() -> None:
    assert passes({"type": "equals"}, '{"b": [1, 2.0], "a": true}', expected={"a": True, "b": [1, 2]})
    assert not passes({"type": "equals"}, '{"a": 1}', expected={"a": True})
    assert passes({"type": "equals", "value": [1, "x"]}, [1, "x"])
    assert score({"type": "equals", "value": 3}, observe("three")).reason.startswith("the output is not JSON")


def test_an_explicit_null_value_is_compared_as_json_null() -> None:
    assert passes({"type": "equals", "value": None}, "null")
    assert passes({"type": "jsonpath_equals", "path": "$.coupon", "value": None}, '{"coupon": null}')
    assert not passes({"type": "jsonpath_equals", "path": "$.coupon", "value": None}, '{"coupon": "X"}')


def test_an_assertion_without_a_value_fails_a_case_without_expected() -> None:
    result = score({"type": "equals"}, observe("anything"))
    assert not result.passed
    assert "no `value`" in result.reason


def test_contains_all_scores_the_share_found() -> None:
    result = score(
        {"type": "contains", "values": ["refund", "7 days", "receipt"]}, observe("A refund in 7 days.")
    )
    assert (result.passed, result.score, result.reason) == (False, 2 / 3, "missing ['receipt']")
    assert passes({"type": "contains", "value": "refund"}, "A refund in 7 days.")


def test_contains_any_and_case_insensitive() -> None:
    spec = {"type": "contains", "values": ["REFUND", "exchange"], "mode": "any", "ignore_case": True}
    assert passes(spec, "A refund.")
    assert not passes(spec, "No luck.")
    assert not passes({"type": "contains", "value": "REFUND"}, "A refund.")


def test_contains_reads_the_expected_string_or_list() -> None:
    assert passes({"type": "contains"}, "order 42 shipped", expected=["42", "shipped"])
    assert not passes({"type": "contains"}, "order 42", expected="shipped")


def test_contains_reads_a_json_output_as_its_json_text() -> None:
    assert passes({"type": "contains", "value": '"status":"shipped"'}, {"status": "shipped", "id": 4})


def test_not_contains_fails_on_any_value_found() -> None:
    spec = {"type": "not_contains", "values": ["as an AI", "sorry"], "ignore_case": True}
    assert passes(spec, "Here is your order.")
    result = score(spec, observe("Sorry, I cannot."))
    assert (result.passed, result.score, result.reason) == (False, 0.5, "found ['sorry']")


def test_regex_searches_and_honours_ignore_case() -> None:
    assert passes({"type": "regex", "pattern": r"ORD-\d{4}"}, "Your order ORD-1234 is on its way")
    assert not passes({"type": "regex", "pattern": r"^ORD-\d{4}$"}, "Your order ORD-1234")
    assert passes({"type": "regex", "pattern": "^refund", "ignore_case": True}, "Refund approved")
    assert not passes({"type": "regex", "pattern": "^refund"}, "Refund approved")


def test_a_backtracking_pattern_runs_in_linear_time() -> None:
    (scorer,) = build([{"type": "regex", "pattern": "^(a+)+$"}])
    started = time.perf_counter()
    result = asyncio.run(scorer.score(observe("a" * 100_000 + "!"), NO_CALLS))
    assert not result.passed
    assert time.perf_counter() - started < 0.5


def test_json_valid() -> None:
    assert passes({"type": "json_valid"}, '{"a": 1}')
    assert passes({"type": "json_valid"}, {"already": "parsed"})
    result = score({"type": "json_valid"}, observe('{"a": 1'))
    assert not result.passed
    assert result.reason.startswith("the output is not JSON")


ORDER_SCHEMA = {
    "type": "object",
    "required": ["status", "eta_days"],
    "properties": {"status": {"enum": ["shipped", "pending"]}, "eta_days": {"type": "integer"}},
}


def test_json_schema_validates_the_parsed_output() -> None:
    spec = {"type": "json_schema", "schema": ORDER_SCHEMA}
    assert passes(spec, '{"status": "shipped", "eta_days": 2}')
    result = score(spec, observe('{"status": "lost", "eta_days": 2}'))
    assert not result.passed
    assert result.reason.startswith("at $.status: ")
    assert not passes(spec, "shipped in 2 days")


def test_jsonpath_equals_reads_names_indexes_and_quoted_keys() -> None:
    output = '{"order": {"items": [{"sku": "A-1"}, {"sku": "B-2"}], "ship to": "Oslo"}}'
    assert passes({"type": "jsonpath_equals", "path": "$.order.items[1].sku", "value": "B-2"}, output)
    assert passes({"type": "jsonpath_equals", "path": "$.order.items[-1].sku", "value": "B-2"}, output)
    assert passes({"type": "jsonpath_equals", "path": "$.order['ship to']"}, output, expected="Oslo")
    assert not passes({"type": "jsonpath_equals", "path": "$.order.items[0].sku", "value": "B-2"}, output)
    missing = score(
        {"type": "jsonpath_equals", "path": "$.order.items[5].sku", "value": "x"}, observe(output)
    )
    assert (missing.passed, missing.reason) == (False, "$.order.items[5] is not in the output")


def test_jsonpath_quoted_keys_take_escaped_quotes() -> None:
    output = {"it's": {'say "hi"': 1}}
    assert passes({"type": "jsonpath_equals", "path": '$[\'it\\\'s\']["say \\"hi\\""]', "value": 1}, output)


def test_numeric_within_absolute_or_relative_tolerance() -> None:
    assert passes({"type": "numeric", "value": 10, "tolerance": 0.5}, "10.4")
    assert not passes({"type": "numeric", "value": 10, "tolerance": 0.5}, "10.6")
    assert passes({"type": "numeric", "value": 200, "relative_tolerance": 0.05}, "209")
    assert not passes({"type": "numeric", "value": 200, "relative_tolerance": 0.05}, "211")
    assert passes({"type": "numeric", "path": "$.total"}, '{"total": 42.0}', expected=42)
    assert not passes({"type": "numeric", "value": 1}, "one")
    assert not passes({"type": "numeric", "path": "$.total", "value": 1}, '{"total": true}')


def test_max_latency_and_max_cost() -> None:
    assert score({"type": "max_latency_ms", "value": 500}, observe("x", latency_ms=500)).passed
    assert not score({"type": "max_latency_ms", "value": 500}, observe("x", latency_ms=501)).passed
    assert score({"type": "max_cost_usd", "value": "0.001"}, observe("x", cost="0.001")).passed
    result = score({"type": "max_cost_usd", "value": 0.0005}, observe("x", cost="0.001"))
    assert (result.passed, result.reason) == (False, "$0.001 vs limit $0.0005")


def test_name_and_weight_are_carried_to_the_score() -> None:
    result = score({"type": "contains", "value": "x", "name": "mentions-x", "weight": 3}, observe("x"))
    assert (result.scorer, result.weight) == ("mentions-x", 3.0)
    assert result.as_json() == {
        "scorer": "mentions-x",
        "score": 1.0,
        "passed": True,
        "reason": "all found",
        "weight": 3.0,
    }


def test_combine_weights_the_mean_and_needs_every_score_to_pass() -> None:
    scores = [Score("a", 1.0, True, weight=3), Score("b", 0.0, False, weight=1)]
    assert combine(scores) == (False, 0.75)
    assert combine([]) == (True, 1.0)


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ({"type": "contains"}, "scorers must be a list of specs"),
        (["contains"], "scorer 0: a spec must be an object with a `type`"),
        ([{"type": "equal"}], "scorer 0: unknown type 'equal' (one of contains, "),
        ([{"value": "x"}], "scorer 0: unknown type None"),
        (
            [{"type": "json_valid"}, {"type": "contains", "valeu": "x"}],
            "scorer 1 (contains): unknown argument `valeu`",
        ),
        (
            [{"type": "contains", "value": "x", "values": ["y"]}],
            "scorer 0 (contains): give `value` or `values`, not both",
        ),
        (
            [{"type": "contains", "values": []}],
            "scorer 0 (contains): `values` must be a non-empty list of non-empty strings",
        ),
        ([{"type": "contains", "value": 3}], "scorer 0 (contains): `value` must be a non-empty string"),
        (
            [{"type": "contains", "value": "x", "mode": "some"}],
            "scorer 0 (contains): `mode` must be one of all, any",
        ),
        (
            [{"type": "not_contains", "value": "x", "mode": "all"}],
            "scorer 0 (not_contains): unknown argument `mode`",
        ),
        (
            [{"type": "equals", "ignore_case": "yes"}],
            "scorer 0 (equals): `ignore_case` must be true or false",
        ),
        ([{"type": "regex"}], "scorer 0 (regex): `pattern` must be a non-empty string"),
        ([{"type": "regex", "pattern": "(?=a)b"}], "scorer 0 (regex): `pattern` is not a regular expression"),
        ([{"type": "regex", "pattern": "(a"}], "scorer 0 (regex): `pattern` is not a regular expression"),
        ([{"type": "json_schema", "schema": "object"}], "scorer 0 (json_schema): `schema` must be an object"),
        (
            [{"type": "json_schema", "schema": {"type": "thing"}}],
            "scorer 0 (json_schema): `schema` is not a JSON Schema",
        ),
        (
            [{"type": "json_schema", "schema": {"$ref": "https://example.com/s.json"}}],
            "scorer 0 (json_schema): `schema` is not a JSON Schema we run (at $['$ref']): remote references",
        ),
        (
            [{"type": "jsonpath_equals", "path": "order.id"}],
            "scorer 0 (jsonpath_equals): `path` is not a JSONPath we read: must start with `$`",
        ),
        (
            [{"type": "jsonpath_equals", "path": "$.items[*]"}],
            "scorer 0 (jsonpath_equals): `path` is not a JSONPath we read: unexpected '[*]' at character 7",
        ),
        ([{"type": "numeric", "value": "ten"}], "scorer 0 (numeric): `value` must be a number"),
        (
            [{"type": "numeric", "tolerance": -1}],
            "scorer 0 (numeric): `tolerance` must be a number of at least 0",
        ),
        ([{"type": "max_latency_ms"}], "scorer 0 (max_latency_ms): `value` must be a number of at least 0"),
        (
            [{"type": "max_cost_usd", "value": "free"}],
            "scorer 0 (max_cost_usd): `value` must be a non-negative amount",
        ),
        (
            [{"type": "max_cost_usd", "value": True}],
            "scorer 0 (max_cost_usd): `value` must be a non-negative amount",
        ),
        (
            [{"type": "json_valid", "name": "has space"}],
            "scorer 0 (json_valid): `name` must be 1 to 64 letters",
        ),
        ([{"type": "json_valid", "weight": 0}], "scorer 0 (json_valid): `weight` must be a number above 0"),
        ([{"type": "json_valid"}] * 51, "at most 50 scorers, got 51"),
    ],
)
def test_a_bad_spec_is_refused_with_a_precise_message(specs: Any, message: str) -> None:
    with pytest.raises(ScorerSpecError) as error:
        build(specs)
    assert str(error.value).startswith(message), str(error.value)
