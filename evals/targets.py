"""Targets: what an experiment asks to answer each case.

- model: `{"model": "sim-small" | "auto", "quality_target": 0.9, "params": {...}}`;
  the case's `input.messages` are sent as they are.
- prompt: `{"prompt": "faq", "prompt_version": 3, "model": ..., "params": {...}}`;
  the prompt (the registry's, registry/prompts.py) is rendered with the case's `input.variables` in
  the agents' sandbox and sent as the user's message.
- agent: `{"agent": "support", "agent_version": 2}`; the case's
  `input.agent_input` is the input of a recorded agent run (agents.Run),
  executed in this process by the agents' engine.

`normalise` checks a target when the experiment is created (TargetError, a
400 at the API) and pins the prompt's or agent's latest version, so an
experiment always runs what it was created with. Every model call goes through
the in-process gateway with the experiment's key and the case's stable request
id (`CaseResult.request_id_for`): a case called again after a crash is billed
once. An agent case is resumed from its run's events instead (its steps are
never repeated), found again through `AgentCaseRun`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django_tenants.utils import schema_context

from agents import engine
from agents.events import LLM_USAGE, RETRIEVAL_USAGE
from agents.models import Agent, AgentVersion, Run, RunStatus
from agents.runtime import close_runtime as close_agents_runtime
from agents.services import InputError, create_run
from agents.spec import SpecError
from agents.templating import TemplateError, render
from evals.models import AgentCaseRun, Case, CaseResult, TargetKind
from gateway.errors import GatewayError
from gateway.transports.inprocess import InProcessGateway
from gateway.validation import CHAT_FIELDS, validate_chat
from registry import selectors as registry
from registry.models import Entry, Kind
from registry.policy import RefusedError
from routing.models import ROUTED_MODEL, ModelAlias, ProviderModel
from tenants.context import current_schema_name
from tenants.models import ApiKey

# Request fields a target's `params` may set; the case and the target own the rest.
PARAM_FIELDS = CHAT_FIELDS - {"model", "messages", "n", "stream", "stream_options", "store", "metadata"}
TARGET_FIELDS = {
    TargetKind.MODEL: frozenset({"model", "quality_target", "params"}),
    TargetKind.PROMPT: frozenset({"prompt", "prompt_version", "model", "quality_target", "params"}),
    TargetKind.AGENT: frozenset({"agent", "agent_version"}),
}
CHECK_MESSAGES = [{"role": "user", "content": "check"}]


class TargetError(ValueError):
    """A target that cannot be built: the message says which field and why (a 400)."""

    def __init__(self, message: str, param: str = "target") -> None:
        super().__init__(message)
        self.message, self.param = message, param


class CaseFailedError(Exception):
    """The target could not answer this case (its result is `errored`, not passed)."""


@dataclass(frozen=True)
class Answer:
    output: Any  # the answer's text, or an agent run's output
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    request_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseCall:
    """One case to answer, and what answering it is attributed to."""

    experiment_id: str
    case: Case
    api_key: ApiKey
    gateway: InProcessGateway

    @property
    def request_id(self) -> str:
        return CaseResult.request_id_for(self.experiment_id, self.case.key)


class Target(Protocol):
    async def answer(self, call: CaseCall) -> Answer: ...

    @property
    def routed(self) -> bool:
        """Whether the case's request (`call.request_id`) is one the router chose a model for."""
        ...


@dataclass(frozen=True)
class ModelTarget:
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    quality_target: float | None = None

    @property
    def routed(self) -> bool:
        return self.model == ROUTED_MODEL

    async def answer(self, call: CaseCall) -> Answer:
        return await self.complete(call, case_field(call.case, "messages", list))

    async def complete(self, call: CaseCall, messages: list[Any]) -> Answer:
        body = {**self.params, "model": self.model, "messages": messages}
        completion = await call.gateway.chat(
            call.api_key, body, call.request_id, quality_target=self.quality_target
        )
        return Answer(
            completion.content,
            completion.prompt_tokens,
            completion.completion_tokens,
            completion.cost_usd,
            (completion.request_id,),
        )


@dataclass(frozen=True)
class PromptTarget:
    template: str
    model: ModelTarget

    @property
    def routed(self) -> bool:
        return self.model.routed

    async def answer(self, call: CaseCall) -> Answer:
        variables = case_field(call.case, "variables", dict)
        try:
            content = str(render(self.template, variables))
        except TemplateError as error:
            raise CaseFailedError(f"the prompt does not render with the case's variables: {error}") from None
        return await self.model.complete(call, [{"role": "user", "content": content}])


@dataclass(frozen=True)
class AgentTarget:
    version_id: int
    # Taken when built: a coroutine sees a connection of its own, not the runner's tenant.
    schema_name: str
    # A run makes many model calls; none of them is the case's request.
    routed = False

    async def answer(self, call: CaseCall) -> Answer:
        if not isinstance(call.case.input, dict) or "agent_input" not in call.case.input:
            raise CaseFailedError("the case's input has no `agent_input`")
        # The engine is synchronous (its own loop per thread): it runs beside this loop.
        return await asyncio.to_thread(run_agent_case, self.schema_name, self.version_id, call)


def case_field(case: Case, name: str, kind: type[Any]) -> Any:
    value = case.input.get(name) if isinstance(case.input, dict) else None
    if not isinstance(value, kind):
        raise CaseFailedError(f"the case's input has no `{name}` {kind.__name__}")
    return value


def run_agent_case(schema_name: str, version_id: int, call: CaseCall) -> Answer:
    """The case's agent run, created once per experiment and case, executed (or resumed) to its end."""
    try:
        with schema_context(schema_name):
            run = case_run(version_id, call)
            if not run.is_finished:
                engine.execute_run(run.pk)
                run.refresh_from_db()
            return answer_of(run)
    finally:
        close_agents_runtime()
        connection.close()


def case_run(version_id: int, call: CaseCall) -> Run:
    found = AgentCaseRun.objects.filter(experiment_id=call.experiment_id, case=call.case).first()
    if found is not None:
        return found.run
    version = AgentVersion.objects.select_related("agent").get(pk=version_id)
    try:
        with transaction.atomic():
            run = create_run(version, call.case.input["agent_input"], call.api_key)
            AgentCaseRun.objects.create(experiment_id=call.experiment_id, case=call.case, run=run)
    except (InputError, SpecError) as error:
        raise CaseFailedError(f"{error.path}: {error.message}") from None
    except IntegrityError:  # another delivery made it first
        return AgentCaseRun.objects.get(experiment_id=call.experiment_id, case=call.case).run
    return run


def answer_of(run: Run) -> Answer:
    if run.status != RunStatus.SUCCEEDED:
        raise CaseFailedError(f"the agent run {run.pk} ended {run.status}: {run.error}")
    usage = run.events.filter(Q(type=LLM_USAGE) | Q(type=RETRIEVAL_USAGE)).values_list("data", flat=True)
    return Answer(
        run.output,
        run.prompt_tokens,
        run.completion_tokens,
        run.cost_usd,
        tuple(str(data["request_id"]) for data in usage),
    )


# Checking targets (at creation) and building them (at run time)


def normalise(kind: str, target: Any) -> dict[str, Any]:
    """`target` checked for `kind`, with the prompt's or agent's version pinned; TargetError if invalid."""
    if kind not in TargetKind.values:
        raise TargetError(f"`target_kind` must be one of {', '.join(TargetKind.values)}.", "target_kind")
    if not isinstance(target, dict):
        raise TargetError("`target` must be an object.")
    unknown = sorted(set(target) - TARGET_FIELDS[TargetKind(kind)])
    if unknown:
        raise TargetError(f"Unknown field `{unknown[0]}` for a {kind} target.", f"target.{unknown[0]}")
    if kind == TargetKind.AGENT:
        version = agent_version(target)
        return {"agent": version.agent.name, "agent_version": version.version}
    pinned = check_model(target)
    if kind == TargetKind.PROMPT:
        prompt = prompt_of(target)
        pinned = {"prompt": prompt.name, "prompt_version": prompt.version, **pinned}
    return pinned


def build(kind: str, target: dict[str, Any]) -> Target:
    """The target an experiment runs (its stored, normalised `target`); TargetError
    if what it names is gone."""
    if kind == TargetKind.AGENT:
        return AgentTarget(agent_version(target).pk, current_schema_name())
    model = ModelTarget(target["model"], target.get("params", {}), target.get("quality_target"))
    if kind == TargetKind.PROMPT:
        return PromptTarget(prompt_of(target).manifest["template"], model)
    return model


def check_model(target: dict[str, Any]) -> dict[str, Any]:
    model = target.get("model")
    if not isinstance(model, str) or not model:
        raise TargetError("`model` must name a model, or `auto`.", "target.model")
    if model != ROUTED_MODEL and not known_model(model):
        raise TargetError(f"The model `{model}` does not exist.", "target.model")
    checked: dict[str, Any] = {"model": model, "params": check_params(target.get("params", {}))}
    quality = target.get("quality_target")
    if quality is not None:
        if model != ROUTED_MODEL:
            raise TargetError("`quality_target` applies to `auto` only.", "target.quality_target")
        if isinstance(quality, bool) or not isinstance(quality, int | float) or not 0 < quality <= 1:
            raise TargetError(
                "`quality_target` must be a number above 0, at most 1.", "target.quality_target"
            )
        checked["quality_target"] = float(quality)
    return checked


def known_model(name: str) -> bool:
    enabled = ProviderModel.objects.filter(is_enabled=True, provider__is_enabled=True)
    return (
        enabled.filter(model_id=name).exists()
        or ModelAlias.objects.filter(alias=name, target__in=enabled).exists()
    )


def check_params(params: Any) -> dict[str, Any]:
    """Request fields checked as the gateway checks them (validate_chat)."""
    if not isinstance(params, dict):
        raise TargetError("`params` must be an object.", "target.params")
    refused = sorted(set(params) - PARAM_FIELDS)
    if refused:
        raise TargetError(f"`params` may not set `{refused[0]}`.", f"target.params.{refused[0]}")
    try:
        validate_chat({**params, "model": "check", "messages": CHECK_MESSAGES})
    except GatewayError as error:
        raise TargetError(
            f"`params`: {error.message}", f"target.params.{error.param or ''}".rstrip(".")
        ) from None
    return params


def prompt_of(target: dict[str, Any]) -> Entry:
    name, version = target.get("prompt"), target.get("prompt_version")
    if not isinstance(name, str) or not name:
        raise TargetError("`prompt` must name a prompt.", "target.prompt")
    number = None if version is None else positive_int(version, "target.prompt_version")
    try:
        return registry.candidate(Kind.PROMPT, name, number)
    except (registry.NotFoundError, RefusedError) as error:
        raise TargetError(str(error), "target.prompt") from None


def agent_version(target: dict[str, Any]) -> AgentVersion:
    name, version = target.get("agent"), target.get("agent_version")
    if not isinstance(name, str) or not name:
        raise TargetError("`agent` must name an agent.", "target.agent")
    agent = Agent.objects.filter(name=name).first()
    if agent is None:
        raise TargetError(f"No agent `{name}`.", "target.agent")
    number = agent.version if version is None else positive_int(version, "target.agent_version")
    found = agent.versions.select_related("agent").filter(version=number).first()
    if found is None:
        raise TargetError(f"The agent `{name}` has no version {number}.", "target.agent_version")
    return found


def positive_int(value: Any, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TargetError(f"`{field_name.rsplit('.', 1)[-1]}` must be a positive integer.", field_name)
    return int(value)
