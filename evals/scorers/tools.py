"""Custom scorers as signed tools: a tenant's own scoring logic behind a webhook,
called the way agents call tools (agents/tools: a manifest signed by staff and
verified on load, input checked against it, timeouts, retries, a breaker per
tenant and tool, an idempotency key).

The tool receives `{"input", "output", "expected"}` and answers
`{"score": 0-1, "passed": bool, "reason"?: str}`. Only webhook tools without
side effects can score: a case may be scored again after a crash. A tool
that fails or answers outside that shape is a failed score saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from agents.tools.invoke import ToolCallError, invoke
from agents.tools.manifests import ToolManifest, load_registry
from evals.scorers import JudgeContext, Observation, Score
from evals.scorers.jsonpath import render
from evals.scorers.specs import Arguments
from gateway.resilience import CircuitBreaker
from tenants.selectors import outbound_policy

MAX_REASON_CHARACTERS = 4_000
SCORE_VALIDATOR = Draft202012Validator(
    {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "passed": {"type": "boolean"},
            "reason": {"type": "string"},
        },
        "required": ["score", "passed"],
    }
)


@dataclass(frozen=True)
class ToolScorer:
    name: str
    weight: float
    manifest: ToolManifest

    @classmethod
    def from_spec(cls, args: Arguments) -> ToolScorer:
        tool = args.string("tool")
        manifest = load_registry().get(tool)
        if manifest is None:
            raise args.error(f"`tool`: no signed tool is named {tool!r}")
        if manifest.implementation != "webhook" or manifest.has_side_effect:
            raise args.error(f"`tool`: {tool!r} is not a webhook tool without side effects")
        return cls(args.name(), args.weight(), manifest)

    async def score(self, observation: Observation, context: JudgeContext) -> Score:
        payload = {"input": observation.input, "output": observation.output, "expected": observation.expected}
        breaker = CircuitBreaker(context.gateway.clients.redis)
        try:
            answer = await invoke(
                self.manifest,
                payload,
                f"{context.request_id_prefix}:{self.name}",
                breaker=breaker,
                tenant_schema=context.api_key.tenant.schema_name,
                outbound=outbound_policy(context.api_key.tenant),
            )
        except ToolCallError as error:
            return self.failure(f"the scoring tool failed: {error.message}")
        problem = best_match(SCORE_VALIDATOR.iter_errors(answer))
        if problem is not None:
            where = render(tuple(problem.absolute_path))
            return self.failure(
                f"the scoring tool's answer breaks the score's shape at {where}: {problem.message}"
            )
        reason = str(answer.get("reason", ""))[:MAX_REASON_CHARACTERS]
        return Score(self.name, float(answer["score"]), answer["passed"], reason, weight=self.weight)

    def failure(self, reason: str) -> Score:
        return Score(self.name, 0.0, False, reason, weight=self.weight)
