"""The runner in process (no worker), against the simulated provider through the
in-process gateway: an experiment's results and aggregates, each target kind,
errors, cancellation, the progress stream and the sweeper."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from agents.models import Run, RunStatus
from agents.services import create_agent
from billing.models import UsageEvent
from evals import runner, services
from evals.models import (
    AgentCaseRun,
    Case,
    Dataset,
    DatasetVersion,
    Experiment,
    ExperimentStatus,
    ResultStatus,
)
from evals.sweeper import sweep_schema
from evals.tasks import sweep
from evals.tests.experiments import (
    PARAMS,
    absent_word,
    answer_to,
    create,
    in_tenant,
    make_version,
    read,
    results,
    run,
)
from realtime import streams
from registry.tests.factories import create_prompt
from testing.database import committed
from testing.metrics import registry_value
from testing.tenants import TenantFixture
from testing.usage import drain_usage_events

CASES = 50
SCORED = "aiaas_eval_cases_total"


class WorkerDiedError(BaseException):
    """Raised where a worker would be killed: nothing after it runs (no `finish`)."""


def test_an_experiment_of_50_cases_completes_with_the_hand_counted_aggregates(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    # Case n's expected word is in its answer unless n is a multiple of 3 (17 of 50 fail);
    # every fifth case also asserts a latency bound it meets.
    contents = [f"Eval case {n}." for n in range(CASES)]
    answers = [answer_to(content) for content in contents]
    words = [answer.split()[2] if n % 3 else absent_word(answer) for n, answer in enumerate(answers)]
    latency_bound = [{"type": "max_latency_ms", "value": 60_000}]
    version_id = make_version(
        serving_tenant,
        [{"messages": [{"role": "user", "content": content}]} for content in contents],
        expected=words,
        assertions=[latency_bound if n % 5 == 0 else [] for n in range(CASES)],
        version_assertions=[{"type": "contains"}],
    )
    experiment_id = create(serving_tenant, version_id, concurrency=8)
    statuses = ("passed", "failed", "errored")
    scored_before = {status: registry_value(SCORED, status=status) for status in statuses}

    experiment = run(serving_tenant, experiment_id)

    assert (experiment.status, experiment.error, experiment.attempts) == (ExperimentStatus.SUCCEEDED, "", 1)
    scored = {status: registry_value(SCORED, status=status) - scored_before[status] for status in statuses}
    assert scored == {"passed": 33, "failed": 17, "errored": 0}
    stored = results(serving_tenant, experiment_id)
    assert len(stored) == CASES
    assert [stored[f"case-{n:03}"].output for n in range(CASES)] == answers
    failing = {n for n in range(CASES) if n % 3 == 0}
    assert {n for n in range(CASES) if not stored[f"case-{n:03}"].passed} == failing
    # A failing case with the latency bound scores (0 + 1) / 2; without it, 0.
    half_scores = {n for n in failing if n % 5 == 0}  # 0, 15, 30, 45
    assert {n for n in range(CASES) if stored[f"case-{n:03}"].score == 0.5} == half_scores
    aggregates = experiment.aggregates
    assert aggregates is not None
    assert (aggregates["n"], aggregates["passed"], aggregates["errors"]) == (50, 33, 0)
    assert aggregates["pass_rate"] == 0.66
    assert aggregates["mean_score"] == pytest.approx((33 + 4 * 0.5) / 50)
    assert aggregates["ci_low"] < 0.66 < aggregates["ci_high"]
    costs = [result.cost_usd for result in stored.values()]
    assert all(cost > 0 for cost in costs)
    assert Decimal(aggregates["cost_usd"]) == sum(costs) == experiment.cost_usd
    latencies = sorted(result.latency_ms for result in stored.values())
    assert latencies[0] <= aggregates["latency_ms"]["p50"] <= aggregates["latency_ms"]["p95"] <= latencies[-1]

    # The ledger bills each case once, under the case's own request id, at the cost stored.
    committed(lambda: drain_usage_events(settings.USAGE_STREAM))
    rows = committed(lambda: list(UsageEvent.objects.filter(request_id__startswith=f"req_{experiment_id}_")))
    assert sorted(row.request_id for row in rows) == sorted(
        result.request_ids[0] for result in stored.values()
    )
    assert sum(row.cost_usd for row in rows) == experiment.cost_usd
    assert read(serving_tenant, experiment_id).version.locked_at is not None


def test_the_experiments_stream_tells_a_live_subscriber_its_progress_then_its_end(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    version_id = make_version(
        serving_tenant, [{"messages": [{"role": "user", "content": f"P{n}"}]} for n in range(6)]
    )
    experiment_id = create(serving_tenant, version_id, concurrency=2)
    stream_id = read(serving_tenant, experiment_id).stream_id
    group = streams.group_name(serving_tenant.tenant.schema_name, stream_id)
    subscribed = threading.Event()

    async def listen() -> list[dict[str, Any]]:
        layer = streams.receiving_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        subscribed.set()
        messages = [await asyncio.wait_for(layer.receive(channel), 30)]
        while not messages[-1]["final"]:
            messages.append(await asyncio.wait_for(layer.receive(channel), 30))
        return messages

    with ThreadPoolExecutor(1) as executor:
        received = executor.submit(asyncio.run, listen())
        assert subscribed.wait(10)
        experiment = run(serving_tenant, experiment_id)
        messages = received.result(timeout=30)

    events = [message["event"] for message in messages]
    # seq 1 is the `queued` event, logged as the experiment was created (before subscribing).
    assert [message["seq"] for message in messages] == list(range(2, len(messages) + 2))
    assert {event["type"] for event in events[:-1]} == {"experiment.progress"}
    assert all(event["total"] == 6 for event in events[:-1])
    assert [event["done"] for event in events[:-1]] == sorted(event["done"] for event in events[:-1])
    assert events[-1]["type"] == "experiment.succeeded"
    assert events[-1]["aggregates"] == experiment.aggregates
    assert experiment.aggregates is not None
    assert experiment.aggregates["passed"] == 6


def test_a_prompt_target_renders_each_cases_variables_in_the_sandbox(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    name = f"greeting-{timezone.now().timestamp():.0f}"
    in_tenant(serving_tenant, lambda: create_prompt(name, "Greet {{ who }} in {{ lang }}."))
    in_tenant(serving_tenant, lambda: create_prompt(name, "Say hello to {{ who }}."))
    inputs = [{"variables": {"who": "Ada", "lang": "French"}}, {"variables": {"lang": "Dutch"}}]
    version_id = make_version(serving_tenant, inputs)
    target = {"prompt": name, "prompt_version": 1, "model": "sim-small", "params": PARAMS}
    experiment_id = create(serving_tenant, version_id, target_kind="prompt", target=target)

    experiment = run(serving_tenant, experiment_id)

    assert experiment.target == {"prompt": name, "prompt_version": 1, "model": "sim-small", "params": PARAMS}
    stored = results(serving_tenant, experiment_id)
    assert stored["case-000"].output == answer_to("Greet Ada in French.")
    assert (stored["case-001"].status, stored["case-001"].passed) == (ResultStatus.ERRORED, False)
    assert "'who' is undefined" in stored["case-001"].error
    assert experiment.aggregates is not None
    assert experiment.aggregates["errors"] == 1


def test_a_prompt_target_without_a_version_pins_the_latest(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        create_prompt("pinned", "One {{ x }}")
        create_prompt("pinned", "Two {{ x }}")
        experiment = services.create_experiment(
            make_inline_version(),
            "prompt",
            {"prompt": "pinned", "model": "auto"},
            [],
            2,
            tenant.provisioned.issued_key.api_key,
            enqueue=False,
        )
    assert experiment.target == {"prompt": "pinned", "prompt_version": 2, "model": "auto", "params": {}}


def test_an_agent_target_answers_each_case_with_a_recorded_run(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    spec = {
        "name": f"eval-agent-{timezone.now().timestamp():.0f}",
        "steps": [
            {
                "id": "answer",
                "kind": "llm",
                "model": "sim-small",
                "prompt": "Answer: {{ input.text }}",
                "max_tokens": 8,
            }
        ],
    }
    agent = in_tenant(serving_tenant, lambda: create_agent(spec))
    inputs: list[dict[str, Any]] = [
        {"agent_input": {"text": "one"}},
        {"agent_input": {"text": "two"}},
        {"nothing": 1},
    ]
    version_id = make_version(serving_tenant, inputs, version_assertions=[{"type": "contains", "value": " "}])
    experiment_id = create(serving_tenant, version_id, target_kind="agent", target={"agent": agent.name})

    experiment = run(serving_tenant, experiment_id)

    assert experiment.target == {"agent": agent.name, "agent_version": 1}
    stored = results(serving_tenant, experiment_id)
    assert stored["case-000"].output == answer_to("Answer: one")
    assert stored["case-001"].output == answer_to("Answer: two")
    assert stored["case-000"].passed
    assert stored["case-001"].passed
    assert stored["case-002"].error == "the case's input has no `agent_input`"

    def runs() -> list[Run]:
        links = AgentCaseRun.objects.filter(experiment_id=experiment_id).select_related("run", "case")
        return [link.run for link in links.order_by("case__position")]

    recorded = in_tenant(serving_tenant, runs)
    assert [run.status for run in recorded] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert [run.input for run in recorded] == [{"text": "one"}, {"text": "two"}]
    assert stored["case-000"].cost_usd == recorded[0].cost_usd > 0
    assert len(stored["case-000"].request_ids) == 1


def test_a_gateway_error_is_the_cases_error_not_the_experiments(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    inputs: list[dict[str, Any]] = [
        {"messages": [{"role": "user", "content": "fine"}]},
        {"messages": [{"role": "robot", "content": "beep"}]},
        {"messages": "not a list"},
    ]
    version_id = make_version(serving_tenant, inputs)
    experiment = run(serving_tenant, create(serving_tenant, version_id))

    assert experiment.status == ExperimentStatus.SUCCEEDED
    stored = results(serving_tenant, experiment.pk)
    assert stored["case-000"].passed
    assert stored["case-001"].status == ResultStatus.ERRORED
    assert stored["case-001"].error
    assert stored["case-002"].error == "the case's input has no `messages` list"
    assert experiment.aggregates is not None
    assert (experiment.aggregates["passed"], experiment.aggregates["errors"]) == (1, 2)


def test_a_resumed_experiment_calls_only_the_cases_without_a_result(
    serving_tenant: TenantFixture, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    version_id = make_version(
        serving_tenant, [{"messages": [{"role": "user", "content": f"R{n}"}]} for n in range(8)]
    )
    experiment_id = create(serving_tenant, version_id, concurrency=2)
    stored_once = runner.store

    def store_then_die(window: runner.Window, evaluated: list[runner.Evaluated]) -> None:
        stored_once(window, evaluated)
        if window.counts.done >= 3:
            raise WorkerDiedError

    monkeypatch.setattr(runner, "store", store_then_die)
    with pytest.raises(WorkerDiedError):
        run(serving_tenant, experiment_id)
    monkeypatch.undo()
    first = results(serving_tenant, experiment_id)
    assert read(serving_tenant, experiment_id).status == ExperimentStatus.RUNNING
    assert 3 <= len(first) < 8

    experiment = run(serving_tenant, experiment_id)

    assert (experiment.status, experiment.attempts) == (ExperimentStatus.SUCCEEDED, 2)
    second = results(serving_tenant, experiment_id)
    assert len(second) == 8
    assert {key: second[key].created_at for key in first} == {key: r.created_at for key, r in first.items()}


def test_a_cancelled_experiment_stops_between_cases_and_keeps_what_was_done(
    serving_tenant: TenantFixture, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    version_id = make_version(
        serving_tenant, [{"messages": [{"role": "user", "content": f"C{n}"}]} for n in range(20)]
    )
    experiment_id = create(serving_tenant, version_id, concurrency=2)
    stored_once = runner.store

    def store_then_cancel(window: runner.Window, evaluated: list[runner.Evaluated]) -> None:
        stored_once(window, evaluated)
        if window.counts.done >= 4:
            services.cancel_experiment(window.experiment)

    monkeypatch.setattr(runner, "store", store_then_cancel)
    monkeypatch.setattr(runner, "HEARTBEAT_SECONDS", 0.0)
    experiment = run(serving_tenant, experiment_id)

    assert experiment.status == ExperimentStatus.CANCELLED
    done = len(results(serving_tenant, experiment_id))
    assert 4 <= done <= 5  # the one in flight beside the fourth is dropped, or finished with it
    assert experiment.aggregates is not None
    assert experiment.aggregates["n"] == done
    final = streams.read(serving_tenant.tenant.schema_name, experiment.stream_id)[-1]
    assert final.final
    assert final.event["type"] == "experiment.cancelled"


def test_a_queued_experiment_cancelled_is_never_run(serving_tenant: TenantFixture, gateway: str) -> None:
    version_id = make_version(serving_tenant, [{"messages": [{"role": "user", "content": "Q"}]}])
    experiment_id = create(serving_tenant, version_id)
    in_tenant(serving_tenant, lambda: services.cancel_experiment(Experiment.objects.get(pk=experiment_id)))

    experiment = run(serving_tenant, experiment_id)

    assert (experiment.status, experiment.attempts) == (ExperimentStatus.CANCELLED, 0)
    assert results(serving_tenant, experiment_id) == {}
    assert experiment.aggregates is not None
    assert experiment.aggregates["n"] == 0


def test_an_experiment_whose_key_was_revoked_fails_without_calling(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    version_id = make_version(serving_tenant, [{"messages": [{"role": "user", "content": "K"}]}])
    experiment_id = create(serving_tenant, version_id)
    in_tenant(serving_tenant, lambda: Experiment.objects.filter(pk=experiment_id).update(api_key_id=-1))

    experiment = run(serving_tenant, experiment_id)

    assert experiment.status == ExperimentStatus.FAILED
    assert experiment.error == "The API key that started this experiment is no longer usable."
    assert results(serving_tenant, experiment_id) == {}


def test_the_sweeper_queues_again_an_active_experiment_gone_silent(
    serving_tenant: TenantFixture, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    version_id = make_version(serving_tenant, [{"messages": [{"role": "user", "content": "S"}]}])
    silent = create(serving_tenant, version_id)
    beating = create(serving_tenant, version_id)
    long_ago = timezone.now() - timedelta(seconds=settings.EVALS_STALE_SECONDS + 5)
    in_tenant(
        serving_tenant,
        lambda: Experiment.objects.filter(pk=silent).update(status="running", heartbeat_at=long_ago),
    )
    in_tenant(
        serving_tenant,
        lambda: Experiment.objects.filter(pk=beating).update(status="running", heartbeat_at=timezone.now()),
    )
    queued: list[str] = []
    monkeypatch.setattr("evals.sweeper.enqueue_experiment", queued.append)

    in_tenant(serving_tenant, lambda: sweep_schema(timezone.now()))

    assert silent in queued
    assert beating not in queued
    queued.clear()
    in_tenant(serving_tenant, lambda: sweep_schema(timezone.now()))
    assert silent not in queued  # touched when queued: the next sweep waits a whole period


def make_inline_version() -> DatasetVersion:
    dataset = Dataset.objects.create(name="inline")
    version = DatasetVersion.objects.create(dataset=dataset, version=1)
    Case.objects.create(version=version, key="only", position=0, input={"messages": []})
    return version


def test_the_sweep_task_covers_every_tenant(
    tenant: TenantFixture, other_tenant: TenantFixture, django_capture_on_commit_callbacks: Any
) -> None:
    long_ago = timezone.now() - timedelta(hours=1)
    silent = []
    for owner in (tenant, other_tenant):
        with tenant_context(owner.tenant):
            made = Experiment.objects.create(
                version=make_inline_version(),
                target_kind="model",
                target={"model": "sim-small"},
                api_key_id=owner.provisioned.issued_key.api_key.pk,
                status=ExperimentStatus.RUNNING,
                heartbeat_at=long_ago,
            )
            silent.append((owner, made.pk))

    with django_capture_on_commit_callbacks() as queued:
        assert sweep() >= 2

    assert len(queued) >= 2
    for owner, experiment_id in silent:
        with tenant_context(owner.tenant):
            assert Experiment.objects.get(pk=experiment_id).heartbeat_at != long_ago
