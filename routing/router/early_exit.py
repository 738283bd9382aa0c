"""Early exit's acceptance test: does an answer follow the request's JSON schema?

The schema is the tenant's: it is compiled with bounded work (aiaas/json_schema.py:
size limits first, no remote `$ref`, linear-time `pattern`s).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from aiaas.json_schema import InvalidSchemaError, compile_schema

__all__ = ["Acceptance", "InvalidSchemaError", "acceptance", "schema_of"]

Acceptance = Callable[[dict[str, Any]], bool]


def schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    json_schema = response_format.get("json_schema")
    schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
    return schema if isinstance(schema, dict) else None


def acceptance(body: dict[str, Any]) -> Acceptance | None:
    """A test of a completion's content against the request's schema; None without one.
    Raises InvalidSchemaError for a schema that is not valid JSON Schema, is too
    large, or refers outside itself."""
    schema = schema_of(body)
    if schema is None:
        return None
    validator = compile_schema(schema)

    def accepts(completion: dict[str, Any]) -> bool:
        content = completion["choices"][0]["message"].get("content")
        try:
            return isinstance(content, str) and validator.is_valid(orjson.loads(content))
        except orjson.JSONDecodeError:
            return False

    return accepts
