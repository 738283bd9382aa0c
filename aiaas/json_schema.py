"""JSON Schemas a tenant writes (a /v1 `response_format`, an agent's schemas),
compiled and applied with bounded work (docs/decisions/0015).

Promises:
- A schema's size is checked before anything else is done with it: nodes and
  depth (a walk that stops at the limit), then bytes (settings
  JSON_SCHEMA_MAX_NODES, JSON_SCHEMA_MAX_DEPTH, JSON_SCHEMA_MAX_BYTES).
- Nothing is ever fetched: a `$ref` that is not local (`#...`) is refused, and
  the compiler's retriever refuses whatever else would resolve outside the
  schema.
- `pattern` and `patternProperties` run on Rust's `regex` engine
  (jsonschema-rs with RegexOptions): matching time is linear in the input, so
  no pattern backtracks catastrophically; lookaround and backreferences, which
  that engine lacks, make the schema invalid.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jsonschema_rs
import orjson
from django.conf import settings

__all__ = ["InvalidSchemaError", "Validator", "compile_schema", "first_error"]

Validator = jsonschema_rs.Validator
LOCAL_REFERENCE_PREFIX = "#"
REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")
# Per pattern: a compiled program and a lazy DFA cache of at most this size.
REGEX_SIZE_LIMIT_BYTES = 1 << 20


class InvalidSchemaError(ValueError):
    """Not a JSON Schema we compile; `path` is where in the schema (keys and indexes)."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def check_bounds(schema: Any) -> None:
    """Refuse a schema over the size limits, doing work proportional to the limits
    rather than to the schema (a container's values are counted before any is visited)."""
    max_nodes, max_depth = settings.JSON_SCHEMA_MAX_NODES, settings.JSON_SCHEMA_MAX_DEPTH
    counted = 1
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(schema, ())]
    while stack:
        value, path = stack.pop()
        if not isinstance(value, (dict, list)) or not value:
            continue
        if len(path) >= max_depth:
            raise InvalidSchemaError(f"the schema is nested more than {max_depth} levels deep", path)
        counted += len(value)
        if counted > max_nodes:
            raise InvalidSchemaError(f"the schema has more than {max_nodes} values")
        stack.extend((item, (*path, key)) for key, item in children_of(value))
    try:
        size, max_bytes = len(orjson.dumps(schema)), settings.JSON_SCHEMA_MAX_BYTES
    except TypeError:  # orjson's only refusal of parsed JSON: integers beyond 64 bits
        raise InvalidSchemaError("the schema holds an integer beyond 64 bits") from None
    if size > max_bytes:
        raise InvalidSchemaError(f"the schema is {size} bytes, over the limit of {max_bytes}")


def children_of(value: Any) -> list[tuple[str | int, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return list(enumerate(value))
    return []


def check_references(schema: Any, path: tuple[str | int, ...] = ()) -> None:
    """Refuse `$ref`s that point outside the schema (http, https, file, relative)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(schema, path)]
    while stack:
        value, here = stack.pop()
        if isinstance(value, dict):
            for keyword in REFERENCE_KEYWORDS:
                target = value.get(keyword)
                if isinstance(target, str) and not target.startswith(LOCAL_REFERENCE_PREFIX):
                    raise InvalidSchemaError(
                        f"remote references are not allowed ({keyword}: {target[:200]!r})", (*here, keyword)
                    )
        stack.extend((item, (*here, key)) for key, item in children_of(value))


def refuse_retrieval(uri: str) -> Any:
    raise InvalidSchemaError(f"remote references are not allowed ({uri[:200]})")


def compile_schema(schema: Any) -> Validator:
    """A validator for `schema`, or InvalidSchemaError; compiled validators are cached
    by the schema's canonical JSON."""
    if not isinstance(schema, (dict, bool)):  # jsonschema-rs would parse a string as JSON text
        raise InvalidSchemaError("a JSON Schema is an object or a boolean")
    check_bounds(schema)
    check_references(schema)
    return compiled(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=512)
def compiled(schema_json: bytes) -> Validator:
    schema = orjson.loads(schema_json)
    options = jsonschema_rs.RegexOptions(
        size_limit=REGEX_SIZE_LIMIT_BYTES, dfa_size_limit=REGEX_SIZE_LIMIT_BYTES
    )
    try:
        return jsonschema_rs.validator_for(schema, retriever=refuse_retrieval, pattern_options=options)
    except jsonschema_rs.ValidationError as error:
        raise InvalidSchemaError(first_line(error.message), tuple(error.instance_path)) from None
    except jsonschema_rs.ReferencingError as error:
        raise InvalidSchemaError(first_line(str(error))) from None


def first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "invalid schema"


def first_error(validator: Validator, instance: Any) -> tuple[tuple[str | int, ...], str] | None:
    """(path, message) of the most relevant way `instance` breaks the schema (the
    shallowest error, as jsonschema's `best_match` prefers), or None."""
    best: tuple[tuple[str | int, ...], str] | None = None
    for error in validator.iter_errors(instance):
        path = tuple(error.instance_path)
        if best is None or len(path) < len(best[0]):
            best = (path, error.message)
    return best
