"""Tool calls of the simulated provider: which tools a request calls, and
arguments generated from each tool's JSON Schema.

- Which. `tool_choice` "none" calls nothing; a named function is called; otherwise
  the tools whose function name appears as a word in the last message, when that
  message is the user's (so a follow-up carrying `tool` results gets an answer).
  "required" calls the first tool when none is named. `parallel_tool_calls` false
  keeps the first of them only.
- Arguments. A JSON object valid for the tool's `parameters`: every property,
  enums and consts honoured, numbers within their bounds, arrays of minItems (at
  least one), strings of their format (date, date-time, email, uri, uuid) or of
  vocabulary words within their length bounds, local `$ref`s followed, the first
  branch of anyOf/oneOf taken and allOf merged. `pattern` is not honoured.
  The same conversation gets the same arguments on every model.
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

# Beyond this depth an object holds its required properties only (recursive schemas end).
MAX_DEPTH = 6
ARGUMENT_FRAGMENT_CHARACTERS = 8
FORMATS = {
    "date": "2025-01-01",
    "date-time": "2025-01-01T00:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}


@dataclass(frozen=True)
class Tool:
    name: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ToolChoice:
    mode: str = "auto"  # auto, none, required, or function (then `name`)
    name: str | None = None


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str

    @property
    def fragments(self) -> tuple[str, ...]:
        """The arguments as streamed: "".join(fragments) == arguments."""
        size = ARGUMENT_FRAGMENT_CHARACTERS
        return tuple(self.arguments[start : start + size] for start in range(0, len(self.arguments), size))


def chosen_tools(
    tools: Sequence[Tool], choice: ToolChoice, last_role: str, last_text: str, *, parallel: bool
) -> list[Tool]:
    if not tools or choice.mode == "none":
        return []
    if choice.mode == "function":
        return [tool for tool in tools if tool.name == choice.name][:1]
    named = [
        tool
        for tool in tools
        if last_role == "user" and re.search(rf"(?<![\w-]){re.escape(tool.name)}(?![\w-])", last_text)
    ]
    if choice.mode == "required":
        named = named or [tools[0]]
    return named if parallel else named[:1]


def tool_calls(tools: Sequence[Tool], seed: bytes, words: Sequence[str]) -> tuple[ToolCall, ...]:
    calls = []
    for index, tool in enumerate(tools):
        key = seed + orjson.dumps([tool.name, index])
        generator = random.Random(int.from_bytes(hashlib.sha256(key).digest(), "big"))  # noqa: S311
        arguments = Arguments(tool.parameters, generator, words).value(tool.parameters)
        call_id = "call_" + hashlib.sha256(key).hexdigest()[:24]
        calls.append(ToolCall(call_id, tool.name, orjson.dumps(arguments).decode()))
    return tuple(calls)


class Arguments:
    """Values valid for the schemas of one tool's `parameters` (`root`, which local
    `$ref`s point into), drawn from `generator` and the vocabulary `words`."""

    def __init__(self, root: Mapping[str, Any], generator: random.Random, words: Sequence[str]) -> None:
        self.root = root
        self.generator = generator
        self.words = words

    def value(self, schema: Any, depth: int = 0) -> Any:
        """A value valid for `schema` (see the module's list of what is honoured)."""
        schema = resolve(schema, self.root)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.generator.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.value(schema[key][0], depth)
        if isinstance(schema.get("allOf"), list):
            merged = {k: v for part in schema["allOf"] for k, v in resolve(part, self.root).items()}
            return self.value(merged, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((item for item in kind if item != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind in ("integer", "number"):
            return self.number(schema)
        if kind == "boolean":
            return self.generator.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema)

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required: list[str] = schema.get("required") or []
        if not isinstance(properties, dict) or not isinstance(required, list):
            return {}
        names = [name for name in properties if depth < MAX_DEPTH or name in required]
        return {name: self.value(properties[name], depth + 1) for name in names}

    def array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        count = max(int(schema.get("minItems") or 0), 1 if depth < MAX_DEPTH else 0)
        count = min(count, int(schema.get("maxItems", count)))
        return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]

    def string(self, schema: Mapping[str, Any]) -> str:
        string_format = schema.get("format")
        if string_format == "uuid":
            return str(uuid.UUID(int=self.generator.getrandbits(128), version=4))
        if string_format in FORMATS:
            return FORMATS[string_format]
        text = " ".join(self.generator.choice(self.words) for _ in range(2))
        minimum, maximum = int(schema.get("minLength") or 0), schema.get("maxLength")
        text = text.ljust(minimum, "x")
        return text[:maximum] if isinstance(maximum, int) else text

    def number(self, schema: Mapping[str, Any]) -> int | float:
        integer = schema.get("type") == "integer" or "integer" in (schema.get("type") or [])
        step = 1 if integer else 0.5
        low = schema.get("minimum", schema.get("exclusiveMinimum", -step) + step)
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100 + step) - step)
        if integer:
            return self.generator.randint(int(-(-low // 1)), max(int(-(-low // 1)), int(high // 1)))
        return float(min(max(round(self.generator.uniform(low, high), 2), low), high))


def resolve(schema: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """`schema` with a local `$ref` (#/...) followed; {} for anything that is not a schema object."""
    seen = 0
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < MAX_DEPTH:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema, seen = target, seen + 1
    return schema if isinstance(schema, dict) else {}
