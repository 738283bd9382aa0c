"""Writes: agents and their versions, runs (start, cancel, replay).

Everything here runs in the tenant's schema; callers are API views, the
dashboard and tests, which have entered it.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from agents import events
from agents.models import Agent, AgentVersion, Run, RunStatus
from agents.spec import (
    NotJSONError,
    SpecError,
    apply_overlay,
    check_json_value,
    compile_spec,
    describe,
    path_of,
    schema_error,
    walk,
)
from agents.tools.manifests import load_registry
from realtime import streams
from registry import selectors as registry
from registry import services as registry_services
from registry.models import Kind
from registry.policy import RefusedError, signatures_required
from registry.signing import platform_signature
from tenants.models import ApiKey


class AgentNameTakenError(Exception):
    pass


class RunNotFinishedError(Exception):
    """A run that has not finished has no full record to replay."""


class InputError(ValueError):
    """A run's input does not match the agent's input_schema."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def compile_for_tenant(source: Any) -> dict[str, Any]:
    return compile_spec(source, frozenset(load_registry()))


def source_text(source: Any) -> str:
    return source if isinstance(source, str) else json.dumps(source, indent=2)


@transaction.atomic
def create_agent(source: Any, *, actor: str = "") -> Agent:
    """A new agent at version 1. Raises SpecError or AgentNameTakenError."""
    spec = compile_for_tenant(source)
    try:
        with transaction.atomic():
            agent = Agent.objects.create(name=spec["name"], version=1)
    except IntegrityError:
        raise AgentNameTakenError(spec["name"]) from None
    AgentVersion.objects.create(agent=agent, version=1, source=source_text(source), spec=spec)
    register_version(spec, actor)
    return agent


def register_version(spec: dict[str, Any], actor: str) -> None:
    """Record the compiled spec in the registry (kind "agent"), where it is signed,
    promoted and exported; in production a run takes the promoted one (runnable_version)."""
    manifest = {"name": spec["name"], "spec": spec}
    registry_services.create_entry(Kind.AGENT, manifest, actor=actor, signature=platform_signature(manifest))


def runnable_version(agent: Agent) -> AgentVersion:
    """The latest version, or where signatures are required, the version whose spec
    is the agent's signed, promoted registry entry. Raises SpecError when none is."""
    if not signatures_required():
        return agent.versions.get(version=agent.version)
    try:
        entry = registry.resolve(Kind.AGENT, agent.name)
    except (registry.NotFoundError, RefusedError) as error:
        raise SpecError(str(error)) from None
    version = agent.versions.filter(spec=entry.manifest["spec"]).first()
    if version is None:
        raise SpecError(f"No version of agent `{agent.name}` is its production registry entry.")
    return version


@transaction.atomic
def update_agent(agent: Agent, source: Any, *, actor: str = "") -> Agent:
    """A new version of `agent`; runs already started keep theirs. The name may change."""
    spec = compile_for_tenant(source)
    locked = Agent.objects.select_for_update().get(pk=agent.pk)
    if Agent.objects.filter(name=spec["name"]).exclude(pk=agent.pk).exists():
        raise AgentNameTakenError(spec["name"])
    locked.version += 1
    locked.name = spec["name"]
    locked.save(update_fields=["version", "name", "updated_at"])
    AgentVersion.objects.create(agent=locked, version=locked.version, source=source_text(source), spec=spec)
    register_version(spec, actor)
    return locked


def delete_agent(agent: Agent) -> None:
    """Delete the agent and its versions; its runs stay (with their frozen specs)."""
    agent.delete()


def freeze_prompts(spec: dict[str, Any]) -> dict[str, Any]:
    """Replace each `prompt_ref` by the template of the registry's prompt it names:
    the pinned version, else the current one (registry/selectors.py); in
    production only a signed, promoted version."""
    for located in walk(spec["steps"]):
        step = located.step
        ref = step.pop("prompt_ref", None)
        if ref is None:
            continue
        try:
            prompt = registry.resolve(Kind.PROMPT, ref["name"], ref.get("version"))
        except (registry.NotFoundError, RefusedError) as error:
            raise SpecError(str(error), f"{located.path}.prompt_ref") from None
        step["prompt"] = prompt.manifest["template"]
        step["prompt_version"] = {"name": prompt.name, "version": prompt.version}
    return spec


def check_input(spec: dict[str, Any], run_input: Any) -> None:
    try:
        check_json_value(run_input)
    except NotJSONError as error:
        path = path_of(["input", *error.parts])
        raise InputError(f"The input is not a JSON value the run can hold: {error.message}", path) from None
    try:
        events.check_event_size({"input": run_input}, "the input")
    except events.EventTooLargeError as error:
        raise InputError(str(error), "input") from None
    if "input_schema" not in spec:
        return
    problem = schema_error(spec["input_schema"], run_input)
    if problem is not None:
        path = (
            f"input.{problem[0]}" if problem[0] and not problem[0].startswith("[") else f"input{problem[0]}"
        )
        raise InputError(f"The input does not match the agent's input_schema: {describe(problem)}", path)


def start_run(agent: Agent, run_input: Any, api_key: ApiKey, environment: str = "") -> Run:
    """A queued run of the agent's runnable version, sent to the runs queue on commit."""
    with transaction.atomic():
        run = create_run(runnable_version(agent), run_input, api_key, environment)
        enqueue(run)
    return run


def create_run(version: AgentVersion, run_input: Any, api_key: ApiKey, environment: str = "") -> Run:
    """A queued run of `version` that is sent to no worker: its caller executes it
    (`engine.execute_run`), as an eval's agent target does."""
    spec = freeze_prompts(apply_overlay(version.spec, environment))
    check_input(spec, run_input)
    with transaction.atomic():
        run = Run.objects.create(
            agent=version.agent,
            agent_name=version.agent.name,
            agent_version=version.version,
            spec=spec,
            input=run_input,
            environment=environment,
            api_key_id=api_key.pk,
            stream_id=streams.new_stream_id("run"),
        )
        events.append(
            run, events.RUN_QUEUED, key="run.queued", data={"input": run_input, "environment": environment}
        )
    return run


def enqueue(run: Run) -> None:
    from agents.tasks import execute_run

    soft, hard = time_limits(run.spec)
    transaction.on_commit(
        lambda: execute_run.apply_async(
            args=[run.pk], queue=settings.AGENT_RUNS_QUEUE, soft_time_limit=soft, time_limit=hard
        )
    )


def time_limits(spec: dict[str, Any]) -> tuple[float, float]:
    """The run task's Celery soft and hard time limits: its time budget (up to a day)
    and a margin for compensating what it did."""
    budget = {**settings.AGENT_DEFAULT_BUDGET, **spec.get("budget", {})}
    soft = float(budget["max_seconds"]) + settings.AGENT_RUN_SOFT_LIMIT_MARGIN_SECONDS
    return soft, soft + settings.AGENT_RUN_HARD_LIMIT_MARGIN_SECONDS


def replay_run(original: Run, api_key: ApiKey) -> Run:
    """Re-run a recorded run: same frozen spec (prompts included) and input, each llm
    step on the model the original used, tool outputs from the original's record.
    Only a finished run has a whole record (RunNotFinishedError)."""
    if not original.is_finished:
        raise RunNotFinishedError(
            f"Run {original.pk} is {original.status}; only a finished run can be replayed."
        )
    with transaction.atomic():
        run = Run.objects.create(
            agent=original.agent,
            agent_name=original.agent_name,
            agent_version=original.agent_version,
            spec=original.spec,
            input=original.input,
            environment=original.environment,
            api_key_id=api_key.pk,
            replay_of=original,
            stream_id=streams.new_stream_id("run"),
        )
        events.append(
            run, events.RUN_QUEUED, key="run.queued", data={"input": run.input, "replay_of": original.pk}
        )
        enqueue(run)
    return run


def cancel_run(run: Run) -> Run:
    """Ask the run to stop. A queued run is cancelled at once; a running one stops
    before its next step and compensates what it did. A finished run is unchanged."""
    events.append(run, events.RUN_CANCEL_REQUESTED, key="run.cancel_requested")
    run.refresh_from_db()
    if run.status == RunStatus.QUEUED:
        cancelled = events.RunFinished(
            outcome=events.EventType.RUN_CANCELLED, error="cancelled before it started"
        )
        events.append(run, cancelled.type, key="run.finished", data=cancelled.data())
        run.refresh_from_db()
    return run
