"""The scorer types a spec may name, and `build_all` behind `evals.scorers.build`.

| type             | arguments (besides `name`, `weight`)                                 |
|------------------|----------------------------------------------------------------------|
| equals           | value?, ignore_case?, ignore_whitespace?                             |
| contains         | value? or values?, mode? (all, any), ignore_case?                    |
| not_contains     | value? or values?, ignore_case?                                      |
| regex            | pattern, ignore_case?                                                |
| json_valid       |                                                                      |
| json_schema      | schema                                                               |
| jsonpath_equals  | path, value?                                                         |
| numeric          | value?, path?, tolerance?, relative_tolerance?                       |
| max_latency_ms   | value                                                                |
| max_cost_usd     | value                                                                |
| llm_judge        | rubric, model?, scale? ([low, high]), threshold? (0-1, with scale)   |
| pairwise_judge   | rubric?, model?                                                      |
| tool             | tool (a signed webhook tool without side effects)                    |

An argument marked `?` may be left out; a missing `value` (or `values`) is the
case's `expected`; a judge's `model` is "auto" unless given. Scorers that make
calls (judges, tools) need distinct names in one list: a call's request id is
made of its scorer's name.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from evals.scorers import Scorer, ScorerSpecError
from evals.scorers.assertions import (
    Contains,
    Equals,
    JsonPathEquals,
    JsonSchema,
    JsonValid,
    MaxCost,
    MaxLatency,
    Numeric,
    Regex,
)
from evals.scorers.judges import LlmJudge, PairwiseJudge
from evals.scorers.specs import Arguments
from evals.scorers.tools import ToolScorer

MAX_SCORERS = 50

BUILDERS: dict[str, Callable[[Arguments], Scorer]] = {
    "equals": Equals.from_spec,
    "contains": Contains.from_spec,
    "not_contains": partial(Contains.from_spec, negated=True),
    "regex": Regex.from_spec,
    "json_valid": JsonValid.from_spec,
    "json_schema": JsonSchema.from_spec,
    "jsonpath_equals": JsonPathEquals.from_spec,
    "numeric": Numeric.from_spec,
    "max_latency_ms": MaxLatency.from_spec,
    "max_cost_usd": MaxCost.from_spec,
    "llm_judge": LlmJudge.from_spec,
    "pairwise_judge": PairwiseJudge.from_spec,
    "tool": ToolScorer.from_spec,
}
CALLING_TYPES = frozenset({"llm_judge", "pairwise_judge", "tool"})


def build_all(specs: Any) -> list[Scorer]:
    if not isinstance(specs, list):
        raise ScorerSpecError("scorers must be a list of specs")
    if len(specs) > MAX_SCORERS:
        raise ScorerSpecError(f"at most {MAX_SCORERS} scorers, got {len(specs)}")
    scorers = [build_one(spec, index) for index, spec in enumerate(specs)]
    calling = [index for index, spec in enumerate(specs) if spec["type"] in CALLING_TYPES]
    seen: dict[str, int] = {}
    for index in calling:
        name = scorers[index].name
        if name in seen:
            raise ScorerSpecError(
                f"scorer {index} ({specs[index]['type']}): the name {name!r} is taken by scorer "
                f"{seen[name]}; scorers that make calls need distinct names (give `name`)"
            )
        seen[name] = index
    return scorers


def build_one(spec: Any, index: int) -> Scorer:
    if not isinstance(spec, dict):
        raise ScorerSpecError(f"scorer {index}: a spec must be an object with a `type`")
    kind = spec.get("type")
    builder = BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise ScorerSpecError(f"scorer {index}: unknown type {kind!r} (one of {', '.join(sorted(BUILDERS))})")
    arguments = Arguments(spec, index)
    scorer = builder(arguments)
    arguments.finish()
    return scorer
