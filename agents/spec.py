"""WorkflowSpec: an agent written in YAML or JSON, checked by a JSON Schema and then
by the rules a schema cannot say (unique step ids, references, templates).

Every error names the path of the mistake (`steps[1].output_schema.type`), so
the API can answer 400 with it in `param`.

Composition: `fragments` are named step lists a step includes with
`{use: <fragment>}`; they are expanded when the spec is compiled. `overlays`
are per-environment overrides (budget, output, and fields of steps by id)
applied when a run starts in that environment.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from agents.templating import TemplateError, check_template

STEP_KINDS = ("llm", "tool", "condition", "map", "validate")
MAX_SPEC_BYTES = 256 * 1024
MAX_RETRY_ATTEMPTS = 5

_ID = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"}
_TEMPLATE = {"type": "string", "minLength": 1, "maxLength": 20_000}
_JSON_SCHEMA = {"type": "object"}
_COMMON = {"id": _ID, "kind": {"enum": list(STEP_KINDS)}, "description": {"type": "string"}}
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


class SpecError(ValueError):
    """An invalid spec; `path` names where (`spec` for the document itself)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def path_of(parts: Iterator[Any] | list[Any] | tuple[Any, ...]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def schema_error(schema: dict[str, Any], value: Any) -> tuple[str, str] | None:
    """(path, message) of the most relevant way `value` breaks `schema`, or None."""
    error = best_match(Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return None
    return path_of(error.absolute_path), error.message


def describe(problem: tuple[str, str]) -> str:
    return f"{problem[0] or '(root)'}: {problem[1]}"


def parse_source(source: Any) -> dict[str, Any]:
    """The spec as a dict, from a JSON object, or JSON or YAML text."""
    if isinstance(source, dict):
        return source
    if not isinstance(source, str):
        raise SpecError("The spec must be an object, or JSON or YAML text.")
    if len(source.encode()) > MAX_SPEC_BYTES:
        raise SpecError(f"The spec exceeds {MAX_SPEC_BYTES} bytes.")
    try:
        document = yaml.safe_load(source)  # YAML 1.1 is a superset of JSON's syntax for specs
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SpecError(
            f"The spec is not valid YAML or JSON{where}: {getattr(error, 'problem', error)}"
        ) from None
    if not isinstance(document, dict):
        raise SpecError("The spec must be a mapping with `name` and `steps`.")
    return document


def check_shape(document: dict[str, Any]) -> None:
    error = best_match(VALIDATOR.iter_errors(document), key=lambda e: -len(e.absolute_path))
    if error is not None:
        raise SpecError(error.message, path_of(error.absolute_path))


def expand_fragments(
    steps: list[dict[str, Any]], fragments: dict[str, Any], path: str, seen: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    expanded: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        here = f"{path}[{index}]"
        if "use" in step:
            name = step["use"]
            if name not in fragments:
                raise SpecError(f"Unknown fragment `{name}`.", f"{here}.use")
            if name in seen:
                raise SpecError(f"Fragment `{name}` includes itself.", f"{here}.use")
            expanded += expand_fragments(fragments[name], fragments, f"fragments.{name}", (*seen, name))
            continue
        step = dict(step)
        for branch in ("then", "else"):
            if branch in step:
                step[branch] = expand_fragments(step[branch], fragments, f"{here}.{branch}", seen)
        if "step" in step:
            (step["step"],) = expand_fragments([step["step"]], fragments, f"{here}.step", seen)
        expanded.append(step)
    return expanded


@dataclass(frozen=True)
class Located:
    step: dict[str, Any]
    path: str


def walk(steps: list[dict[str, Any]], path: str = "steps") -> Iterator[Located]:
    """Every step, nested ones included, in execution order, with its path."""
    for index, step in enumerate(steps):
        here = f"{path}[{index}]"
        yield Located(step, here)
        for branch in ("then", "else"):
            if branch in step:
                yield from walk(step[branch], f"{here}.{branch}")
        if "step" in step:
            yield from walk([step["step"]], f"{here}.step")


TEMPLATED_FIELDS = ("prompt", "system", "input", "if", "over", "value")
SCHEMA_FIELDS = ("output_schema", "schema")


def check_rules(spec: dict[str, Any], tool_names: frozenset[str] | None) -> None:
    seen: dict[str, dict[str, Any]] = {}
    for located in walk(spec["steps"]):
        step, path = located.step, located.path
        if step["id"] in seen:
            raise SpecError(f"Step id `{step['id']}` is used twice; ids must be unique.", f"{path}.id")
        for name in TEMPLATED_FIELDS:
            if name in step:
                check_field_template(step[name], f"{path}.{name}")
        for name in SCHEMA_FIELDS:
            if name in step:
                check_json_schema(step[name], f"{path}.{name}")
        if step["kind"] == "tool" and tool_names is not None and step["tool"] not in tool_names:
            raise SpecError(
                f"Unknown tool `{step['tool']}` (no verified manifest has that name).", f"{path}.tool"
            )
        if step["kind"] == "validate" and "retry" in step:
            target = seen.get(step["retry"]["step"])
            if target is None or target["kind"] != "llm":
                raise SpecError(
                    "`retry.step` must name an llm step that runs before this one.", f"{path}.retry.step"
                )
        seen[step["id"]] = step
    if "input_schema" in spec:
        check_json_schema(spec["input_schema"], "input_schema")
    if "output" in spec:
        check_field_template(spec["output"], "output")
    for environment, overlay in spec.get("overlays", {}).items():
        for step_id in overlay.get("steps", {}):
            if step_id not in seen:
                raise SpecError(
                    f"Overlay `{environment}` names an unknown step `{step_id}`.",
                    f"overlays.{environment}.steps.{step_id}",
                )


def check_field_template(value: Any, path: str) -> None:
    try:
        check_template(value)
    except TemplateError as error:
        raise SpecError(f"Invalid template: {error.message}", path) from None


def check_json_schema(schema: Any, path: str) -> None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise SpecError(
            f"Invalid JSON Schema: {error.message}", path_of([path, *error.absolute_path])
        ) from None


def compile_spec(source: Any, tool_names: frozenset[str] | None = None) -> dict[str, Any]:
    """The spec, validated, with its fragments expanded (overlays are kept for runs).

    `tool_names`: the tools a tool step may name (None skips that check).
    Raises SpecError naming the path of the first mistake.
    """
    document = parse_source(source)
    check_shape(document)
    spec = copy.deepcopy(document)
    spec["steps"] = expand_fragments(spec["steps"], spec.get("fragments", {}), "steps")
    spec.pop("fragments", None)
    check_rules(spec, tool_names)
    return spec


def apply_overlay(spec: dict[str, Any], environment: str) -> dict[str, Any]:
    """The spec a run in `environment` executes ("" or unknown-free: the base spec)."""
    resolved = copy.deepcopy(spec)
    overlays = resolved.pop("overlays", {})
    if not environment:
        return resolved
    if environment not in overlays:
        raise SpecError(f"The agent has no overlay `{environment}`.", "environment")
    overlay = overlays[environment]
    if "budget" in overlay:
        resolved["budget"] = {**resolved.get("budget", {}), **overlay["budget"]}
    if "output" in overlay:
        resolved["output"] = overlay["output"]
    changes = overlay.get("steps", {})
    for located in walk(resolved["steps"]):
        located.step.update(changes.get(located.step["id"], {}))
    return resolved


def spec_text(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=False)
