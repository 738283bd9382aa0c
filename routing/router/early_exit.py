"""Early exit's acceptance test: does an answer follow the request's JSON schema?"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

Acceptance = Callable[[dict[str, Any]], bool]


class InvalidSchemaError(ValueError):
    """The request's `response_format.json_schema.schema` is not a JSON Schema."""


@lru_cache(maxsize=256)
def compiled(schema_json: bytes) -> Draft202012Validator:
    schema = orjson.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise InvalidSchemaError(error.message) from None
    return Draft202012Validator(schema)


def schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    json_schema = response_format.get("json_schema")
    schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
    return schema if isinstance(schema, dict) else None


def acceptance(body: dict[str, Any]) -> Acceptance | None:
    """A test of a completion's content against the request's schema; None without one.
    Raises InvalidSchemaError for a schema that is not valid JSON Schema."""
    schema = schema_of(body)
    if schema is None:
        return None
    validator = compiled(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))

    def accepts(completion: dict[str, Any]) -> bool:
        content = completion["choices"][0]["message"].get("content")
        try:
            return isinstance(content, str) and validator.is_valid(orjson.loads(content))
        except orjson.JSONDecodeError:
            return False

    return accepts
