"""WorkflowSpec: an agent written in YAML or JSON, checked by a JSON Schema and then
by the rules a schema cannot say (unique step ids, references, templates).

Every error names the path of the mistake (`steps[1].output_schema.type`), so
the API can answer 400 with it in `param`.

Composition: `fragments` are named step lists a step includes with
`{use: <fragment>}`; they are expanded when the spec is compiled. `overlays`
are per-environment overrides (budget, output, and fields of steps by id)
applied when a run starts in that environment.

Validation reads the spec as JSON (the JSON Schema is in agents/spec_schema.py);
`parse_workflow` then turns a validated spec into typed steps for the executor.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from jsonschema.exceptions import best_match

from agents.spec_schema import VALIDATOR
from agents.steps.definitions import (
    DEFAULT_RETRY_ATTEMPTS,
    DEFAULT_TOP_K,
    MAX_MAP_ITEMS,
    ConditionStep,
    LlmStep,
    MapStep,
    RetrieveStep,
    Retry,
    Step,
    StepKind,
    ToolStep,
    ValidateStep,
)
from agents.templating import TemplateError, check_template
from aiaas.json_schema import InvalidSchemaError, compile_schema, first_error
from ingestion.search import SearchMode

MAX_SPEC_BYTES = 256 * 1024
MAX_DEPTH = 64  # nesting of any JSON value in a spec or a run's input
# Run events and streams are written with orjson, which holds integers of 64 bits.
SMALLEST_INTEGER, LARGEST_INTEGER = -(2**63), 2**64 - 1
MAX_TOTAL_STEPS = 1_000  # after fragments are expanded, nested steps included


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
    """(path, message) of the most relevant way `value` breaks `schema`, or None.
    The schema is compiled with bounded work (aiaas/json_schema.py); one that cannot
    be is reported as the problem."""
    try:
        validator = compile_schema(schema)
    except InvalidSchemaError as error:
        return "", f"the schema cannot be used: {error.message}"
    problem = first_error(validator, value)
    if problem is None:
        return None
    return path_of(problem[0]), problem[1]


def describe(problem: tuple[str, str]) -> str:
    return f"{problem[0] or '(root)'}: {problem[1]}"


class SpecLoader(yaml.SafeLoader):
    """YAML without aliases: `*name` refers to an anchored node, and a few nested
    aliases (an "alias bomb") expand to billions of nodes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (`*name`) are not allowed in specs", event.start_mark
            )
        return super().compose_node(parent, index)


class NotJSONError(ValueError):
    """A value JSON cannot hold; `parts` is where it is."""

    def __init__(self, message: str, parts: list[Any]) -> None:
        super().__init__(message)
        self.message = message
        self.parts = parts


def encodable(text: str) -> bool:
    """Whether `text` has UTF-8 bytes: JSON's "\\ud800" decodes to a lone surrogate, which has none."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_json_value(value: Any, parts: list[Any] | None = None) -> None:
    """Refuse what JSON (and PostgreSQL's jsonb) cannot hold: other types (dates,
    bytes, sets), non-string keys, NaN and infinities, integers beyond 64 bits, NUL
    characters, lone surrogates, and nesting deeper than MAX_DEPTH."""
    parts = [] if parts is None else parts
    if len(parts) > MAX_DEPTH:
        raise NotJSONError(f"nested more than {MAX_DEPTH} levels deep", parts)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not SMALLEST_INTEGER <= value <= LARGEST_INTEGER:
            raise NotJSONError("integers must fit in 64 bits", parts)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise NotJSONError(f"{value} is not a JSON number", parts)
    elif isinstance(value, str):
        if "\x00" in value:
            raise NotJSONError("NUL characters are not allowed", parts)
        if not encodable(value):
            raise NotJSONError("lone surrogates (\\ud800-\\udfff) are not allowed", parts)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_value(item, [*parts, index])
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotJSONError(f"the key {key!r} is not a string", parts)
            if "\x00" in key or not encodable(key):
                raise NotJSONError("NUL characters and lone surrogates are not allowed (in a key)", parts)
            check_json_value(item, [*parts, key])
    else:
        raise NotJSONError(f"a {type(value).__name__} value is not JSON", parts)


def parse_source(source: Any) -> dict[str, Any]:
    """The spec as a dict, from a JSON object, or JSON or YAML text."""
    if isinstance(source, str):
        if len(source.encode(errors="replace")) > MAX_SPEC_BYTES:
            raise SpecError(f"The spec exceeds {MAX_SPEC_BYTES} bytes.")
        if "\x00" in source:
            raise SpecError("The spec contains a NUL character.")
        try:
            # YAML 1.1 is a superset of JSON's syntax for specs
            document = yaml.load(source, Loader=SpecLoader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise SpecError(
                f"The spec is not valid YAML or JSON{where}: {getattr(error, 'problem', error)}"
            ) from None
        except RecursionError:
            raise SpecError("The spec is nested too deeply.") from None
    elif isinstance(source, dict):
        document = source
    else:
        raise SpecError("The spec must be an object, or JSON or YAML text.")
    if not isinstance(document, dict):
        raise SpecError("The spec must be a mapping with `name` and `steps`.")
    try:
        check_json_value(document)
    except NotJSONError as error:
        raise SpecError(f"Not a JSON value: {error.message}.", path_of(error.parts)) from None
    return document


def check_shape(document: dict[str, Any]) -> None:
    error = best_match(VALIDATOR.iter_errors(document), key=lambda e: -len(e.absolute_path))
    if error is not None:
        raise SpecError(error.message, path_of(error.absolute_path))


def expand_fragments(
    steps: list[dict[str, Any]],
    fragments: dict[str, Any],
    path: str,
    seen: tuple[str, ...] = (),
    count: list[int] | None = None,
) -> list[dict[str, Any]]:
    """The steps with each `{use: name}` replaced by the fragment's steps; at most
    MAX_TOTAL_STEPS in all (fragments including fragments multiply)."""
    count = [0] if count is None else count
    expanded: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        here = f"{path}[{index}]"
        if "use" in step:
            name = step["use"]
            if name not in fragments:
                raise SpecError(f"Unknown fragment `{name}`.", f"{here}.use")
            if name in seen:
                raise SpecError(f"Fragment `{name}` includes itself.", f"{here}.use")
            expanded += expand_fragments(
                fragments[name], fragments, f"fragments.{name}", (*seen, name), count
            )
            continue
        count[0] += 1
        if count[0] > MAX_TOTAL_STEPS:
            raise SpecError(
                f"The spec has more than {MAX_TOTAL_STEPS} steps once its fragments are expanded.", here
            )
        step = dict(step)
        for branch in ("then", "else"):
            if branch in step:
                step[branch] = expand_fragments(step[branch], fragments, f"{here}.{branch}", seen, count)
        if "step" in step:
            (step["step"],) = expand_fragments([step["step"]], fragments, f"{here}.step", seen, count)
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


TEMPLATED_FIELDS = ("prompt", "system", "input", "if", "over", "value", "collection", "query", "filters")
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
        seen[step["id"]] = step
    check_retry_targets(listed(spec["steps"], "steps"), {})
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


def check_retry_targets(steps: list[tuple[str, dict[str, Any]]], visible: dict[str, dict[str, Any]]) -> None:
    """A validate step retries an llm step that has run before it in the same step
    list or an enclosing one; not one inside a branch (it may not have run), nor across
    a map's boundary (each item's steps are apart from the steps outside the map).
    `steps`: (path, step) pairs."""
    visible = dict(visible)
    for here, step in steps:
        if step["kind"] == "validate" and "retry" in step:
            target = visible.get(step["retry"]["step"])
            if target is None or target["kind"] != "llm":
                raise SpecError(
                    "`retry.step` must name an llm step that runs before this one, in the same "
                    "step list or an enclosing one (not inside a branch or across a map).",
                    f"{here}.retry.step",
                )
        for branch in ("then", "else"):
            if branch in step:
                check_retry_targets(listed(step[branch], f"{here}.{branch}"), visible)
        if "step" in step:
            check_retry_targets([(f"{here}.step", step["step"])], {})
        visible[step["id"]] = step


def listed(steps: list[dict[str, Any]], path: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path}[{index}]", step) for index, step in enumerate(steps)]


def check_field_template(value: Any, path: str) -> None:
    try:
        check_template(value)
    except TemplateError as error:
        raise SpecError(f"Invalid template: {error.message}", path) from None


def check_json_schema(schema: Any, path: str) -> None:
    """A schema in a spec compiles within the limits of aiaas/json_schema.py: size,
    local references only, patterns the linear-time engine accepts."""
    try:
        compile_schema(schema)
    except InvalidSchemaError as error:
        raise SpecError(f"Invalid JSON Schema: {error.message}", path_of([path, *error.path])) from None


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
    for environment in spec.get("overlays", {}):
        check_overlay(spec, environment, tool_names)
    return spec


def check_agent_manifest(manifest: dict[str, Any]) -> None:
    """The registry's check of an agent manifest, `{"name", "spec"}`: the spec
    compiles (its tools are checked when it is saved here) and has that name."""
    if set(manifest) != {"name", "spec"}:
        raise SpecError("an agent manifest has exactly `name` and `spec`", "manifest")
    if compile_spec(manifest["spec"])["name"] != manifest["name"]:
        raise SpecError("the manifest's name is not the spec's", "name")


def check_overlay(spec: dict[str, Any], environment: str, tool_names: frozenset[str] | None) -> None:
    """The spec with the overlay applied must be valid too; an error names the
    overlay's field (`overlays.prod.steps.classify.max_tokens`) where it can."""
    resolved = apply_overlay(spec, environment)
    try:
        check_shape(resolved)
        check_rules(resolved, tool_names)
    except SpecError as error:
        changed = frozenset(spec["overlays"][environment].get("steps", {}))
        raise SpecError(error.message, overlay_path(resolved, environment, changed, error.path)) from None


def overlay_path(resolved: dict[str, Any], environment: str, changed: frozenset[str], path: str) -> str:
    """Where in overlay `environment` the mistake at `path` (of the resolved spec) is;
    `changed`: the ids of the steps the overlay changes."""
    base = f"overlays.{environment}"
    if path.startswith(("budget", "output")):
        return f"{base}.{path}"
    enclosing = [
        located
        for located in walk(resolved["steps"])
        if path == located.path or path.startswith((f"{located.path}.", f"{located.path}["))
    ]
    for located in sorted(enclosing, key=lambda located: -len(located.path)):
        step_id = located.step.get("id")
        if step_id in changed:
            return f"{base}.steps.{step_id}{path[len(located.path) :]}"
    return base


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


@dataclass(frozen=True)
class OutputTemplate:
    """The spec's `output`: a template (any JSON value) rendered when the run succeeds."""

    value: Any


@dataclass(frozen=True)
class Workflow:
    """A run's spec, typed. `output` None: the run's output is its last top-level step's."""

    steps: tuple[Step, ...]
    output: OutputTemplate | None
    budget: dict[str, Any]


def parse_workflow(spec: dict[str, Any]) -> Workflow:
    """The typed form of a validated spec (a run's: overlay applied, prompts frozen)."""
    return Workflow(
        steps=parse_steps(spec["steps"]),
        output=OutputTemplate(spec["output"]) if "output" in spec else None,
        budget=dict(spec.get("budget", {})),
    )


def parse_steps(steps: list[dict[str, Any]]) -> tuple[Step, ...]:
    return tuple(parse_step(step) for step in steps)


def parse_step(step: dict[str, Any]) -> Step:
    kind = StepKind(step["kind"])
    common = {
        "id": step["id"],
        "description": step.get("description", ""),
        "optional": step.get("optional", False),
    }
    if kind is StepKind.LLM:
        return parse_llm(step, common)
    if kind is StepKind.TOOL:
        return ToolStep(**common, tool=step["tool"], input=step.get("input", {}))
    if kind is StepKind.CONDITION:
        then, otherwise = parse_steps(step["then"]), parse_steps(step.get("else", []))
        return ConditionStep(**common, condition=step["if"], then=then, otherwise=otherwise)
    if kind is StepKind.MAP:
        inner, max_items = parse_step(step["step"]), step.get("max_items", MAX_MAP_ITEMS)
        return MapStep(**common, over=step["over"], step=inner, max_items=max_items)
    if kind is StepKind.RETRIEVE:
        return parse_retrieve(step, common)
    return ValidateStep(**common, value=step["value"], schema=step["schema"], retry=parse_retry(step))


def parse_llm(step: dict[str, Any], common: dict[str, Any]) -> LlmStep:
    return LlmStep(
        **common,
        prompt=step["prompt"],
        system=step.get("system"),
        model=step.get("model", "auto"),
        output_schema=step.get("output_schema"),
        max_tokens=step.get("max_tokens"),
        temperature=step.get("temperature"),
    )


def parse_retrieve(step: dict[str, Any], common: dict[str, Any]) -> RetrieveStep:
    return RetrieveStep(
        **common,
        collection=step["collection"],
        query=step["query"],
        top_k=step.get("top_k", DEFAULT_TOP_K),
        mode=SearchMode(step.get("mode", SearchMode.HYBRID)),
        filters=step.get("filters"),
    )


def parse_retry(step: dict[str, Any]) -> Retry | None:
    retry = step.get("retry")
    if retry is None:
        return None
    return Retry(step=retry["step"], max_attempts=retry.get("max_attempts", DEFAULT_RETRY_ATTEMPTS))
