"""The JSON Schema a workflow spec must match: its fields, and each step kind's."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from agents.steps.definitions import MAX_TOP_K, StepKind
from ingestion.search import SearchMode

STEP_KINDS = tuple(kind.value for kind in StepKind)
MAX_RETRY_ATTEMPTS = 5

_ID = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"}
_TEMPLATE = {"type": "string", "minLength": 1, "maxLength": 20_000}
_JSON_SCHEMA = {"type": "object"}
# `optional`: a degrade level that skips optional steps skips it (docs/degrade.md).
_COMMON = {
    "id": _ID,
    "kind": {"enum": list(STEP_KINDS)},
    "description": {"type": "string"},
    "optional": {"type": "boolean"},
}
_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "llm": {
        "properties": {
            **_COMMON,
            "model": {"type": "string", "minLength": 1, "maxLength": 200},
            "system": _TEMPLATE,
            "prompt": _TEMPLATE,
            "prompt_ref": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "version": {"type": "integer", "minimum": 1}},
            },
            "output_schema": _JSON_SCHEMA,
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 100_000},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        },
        "oneOf": [{"required": ["prompt"]}, {"required": ["prompt_ref"]}],
    },
    "tool": {
        "properties": {**_COMMON, "tool": {"type": "string", "minLength": 1}, "input": {}},
        "required": ["tool"],
    },
    "condition": {
        "properties": {
            **_COMMON,
            "if": _TEMPLATE,
            "then": {"$ref": "#/$defs/steps"},
            "else": {"$ref": "#/$defs/steps"},
        },
        "required": ["if", "then"],
    },
    "map": {
        "properties": {
            **_COMMON,
            "over": _TEMPLATE,
            "step": {"$ref": "#/$defs/step"},
            "max_items": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
        "required": ["over", "step"],
    },
    "validate": {
        "properties": {
            **_COMMON,
            "value": {},
            "schema": _JSON_SCHEMA,
            "retry": {
                "type": "object",
                "required": ["step"],
                "additionalProperties": False,
                "properties": {
                    "step": _ID,
                    "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_RETRY_ATTEMPTS},
                },
            },
        },
        "required": ["value", "schema"],
    },
    "retrieve": {
        "properties": {
            **_COMMON,
            "collection": {"type": "string", "minLength": 1, "maxLength": 1_000},
            "query": _TEMPLATE,
            "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K},
            "mode": {"enum": [mode.value for mode in SearchMode]},
            "filters": {"type": ["object", "string"]},
        },
        "required": ["collection", "query"],
    },
}

WORKFLOW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name", "steps"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"},
        "description": {"type": "string"},
        "input_schema": _JSON_SCHEMA,
        "steps": {"$ref": "#/$defs/steps"},
        "output": {},
        "budget": {"$ref": "#/$defs/budget"},
        "fragments": {"type": "object", "additionalProperties": {"$ref": "#/$defs/steps"}},
        "overlays": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "budget": {"$ref": "#/$defs/budget"},
                    "output": {},
                    "steps": {"type": "object", "additionalProperties": {"type": "object"}},
                },
            },
        },
    },
    "$defs": {
        "steps": {"type": "array", "minItems": 1, "maxItems": 200, "items": {"$ref": "#/$defs/step"}},
        "step": {
            "type": "object",
            "if": {"required": ["use"]},
            "then": {
                "additionalProperties": False,
                "properties": {"use": {"type": "string"}},
            },
            "else": {
                "required": ["id", "kind"],
                "properties": {"kind": {"enum": list(STEP_KINDS)}},
                "allOf": [
                    {
                        "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                        "then": {**schema, "additionalProperties": False},
                    }
                    for kind, schema in _KIND_SCHEMAS.items()
                ],
            },
        },
        "budget": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_cost_usd": {"type": "number", "minimum": 0},
                "max_steps": {"type": "integer", "minimum": 1, "maximum": 10_000},
                "max_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 86_400},
            },
        },
    },
}
VALIDATOR = Draft202012Validator(WORKFLOW_SCHEMA)
