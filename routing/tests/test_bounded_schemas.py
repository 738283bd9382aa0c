"""Tenants' JSON Schemas (response_format, agent specs) compiled with bounded work:
size limits before anything else, no remote references, linear-time patterns."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aiaas.json_schema import InvalidSchemaError, compile_schema
from routing.router.early_exit import acceptance
from routing.router.features import PROMPT_HEAD_CHARACTERS, PROMPT_TAIL_CHARACTERS, analyse, prompt_of


def body_with(schema: dict[str, Any]) -> dict[str, Any]:
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}


def answer(content: str) -> dict[str, Any]:
    return {"choices": [{"message": {"content": content}}]}


def two_megabyte_schemas() -> list[dict[str, Any]]:
    wide = {"type": "object", "properties": {f"p{index:06}": {"type": "string"} for index in range(50_000)}}
    long_text = {"type": "string", "description": "d" * 2_000_000}
    return [wide, long_text]


@pytest.mark.parametrize("schema", two_megabyte_schemas(), ids=["many-values", "one-long-string"])
def test_a_two_megabyte_schema_is_refused_before_any_compilation(schema: dict[str, Any]) -> None:
    started = time.perf_counter()

    with pytest.raises(InvalidSchemaError, match=r"more than 10000 values|over the limit of 131072"):
        compile_schema(schema)

    assert time.perf_counter() - started < 0.05


def test_a_schema_nested_too_deeply_is_refused_with_where() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "array", "items": schema}

    with pytest.raises(InvalidSchemaError) as refused:
        compile_schema(schema)

    assert refused.value.message == "the schema is nested more than 32 levels deep"
    assert refused.value.path[:4] == ("items", "items", "items", "items")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "maxLength": 10**30}, "the schema holds an integer beyond 64 bits"),
        ('{"$ref": "https://schemas.example/s.json"}', "a JSON Schema is an object or a boolean"),
        ([{"type": "string"}], "a JSON Schema is an object or a boolean"),
    ],
)
def test_what_is_not_a_schema_we_compile_is_refused_as_invalid(schema: Any, message: str) -> None:
    with pytest.raises(InvalidSchemaError) as refused:
        compile_schema(schema)

    assert refused.value.message == message


class Counting(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        Counting.hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"type": "string"}')

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def schema_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_remote_references_are_refused_and_never_fetched() -> None:
    with schema_server() as url:
        schemas = [
            {"$ref": f"{url}/x.json"},
            {"$ref": "https://schemas.example/x.json"},
            {"$ref": "file:///etc/passwd"},
            {"$id": f"{url}/root.json", "$ref": "other.json"},
            {"properties": {"a": {"$dynamicRef": f"{url}/y.json"}}},
        ]
        for schema in schemas:
            with pytest.raises(InvalidSchemaError, match="remote references are not allowed"):
                compile_schema(schema)

    assert Counting.hits == 0


def test_local_references_still_work() -> None:
    schema = {
        "$defs": {"label": {"enum": ["bug", "question"]}},
        "properties": {"label": {"$ref": "#/$defs/label"}},
    }

    validator = compile_schema(schema)

    assert validator.is_valid({"label": "bug"})
    assert not validator.is_valid({"label": "other"})


def test_a_backtracking_pattern_is_matched_in_linear_time() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(a|aa)+$": {"type": "integer"}},
    }
    accepts = acceptance(body_with(schema))
    assert accepts is not None
    evil = "a" * 100_000 + "!"
    started = time.perf_counter()

    accepted = accepts(answer(f'{{"answer": "{evil}", "{evil}": 1}}'))

    assert accepted is False
    assert time.perf_counter() - started < 0.05
    assert accepts(answer('{"answer": "aaaa", "aa": 1}')) is True
    # The same pattern in Python's backtracking engine: 2**25 paths for 25 characters.
    started = time.perf_counter()
    assert re.match(r"^(a+)+$", "a" * 22 + "!") is None
    assert time.perf_counter() - started > 0.05


def test_patterns_the_linear_engine_cannot_run_make_the_schema_invalid() -> None:
    with pytest.raises(InvalidSchemaError, match=r"is not a \"regex\""):
        compile_schema({"type": "string", "pattern": "(a)\\1"})


def test_the_router_judges_a_bounded_prompt_of_a_huge_one() -> None:
    huge = "word " * 400_000 + "Answer:"
    prompt = prompt_of([{"role": "user", "content": huge}])
    started = time.perf_counter()

    analyse(prompt)

    assert len(prompt) == PROMPT_HEAD_CHARACTERS + 1 + PROMPT_TAIL_CHARACTERS
    assert prompt.endswith("Answer:")
    assert time.perf_counter() - started < 0.05
    assert prompt_of([{"role": "user", "content": "short"}]) == "short"
