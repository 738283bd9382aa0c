"""Creating an experiment checks it whole (target, scorers, cases' assertions,
concurrency, key) and refuses a mistake with a message naming the parameter,
before any case is called; a valid one pins its target and locks its version."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from agents.services import create_agent
from evals import services
from evals.models import Case, Dataset, DatasetVersion, Experiment, ExperimentStatus
from evals.services import ExperimentInputError
from realtime.tests.clients import first_stream_event
from registry.tests.factories import create_prompt
from testing.database import committed
from testing.tenants import TenantFixture

MESSAGES = {"messages": [{"role": "user", "content": "hi"}]}


def make_version(
    assertions: list[Any] | None = None, case_assertions: list[Any] | None = None
) -> DatasetVersion:
    dataset = Dataset.objects.create(name=f"checks-{uuid.uuid4().hex[:8]}")
    version = DatasetVersion.objects.create(dataset=dataset, version=1, assertions=assertions or [])
    Case.objects.create(
        version=version, key="one", position=0, input=MESSAGES, assertions=case_assertions or []
    )
    return version


def create(tenant: TenantFixture, version: DatasetVersion, **fields: Any) -> Experiment:
    arguments: dict[str, Any] = {
        "target_kind": "model",
        "target": {"model": "sim-small"},
        "scorers": [],
        "concurrency": 4,
        **fields,
    }
    api_key = tenant.provisioned.issued_key.api_key
    return services.create_experiment(version, api_key=api_key, enqueue=False, **arguments)


def refusal(tenant: TenantFixture, version: DatasetVersion | None = None, **fields: Any) -> tuple[str, str]:
    with pytest.raises(ExperimentInputError) as refused:
        create(tenant, version or make_version(), **fields)
    return refused.value.param, refused.value.message


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"target_kind": "robot"}, "target_kind", "`target_kind` must be one of model, prompt, agent."),
        ({"target": ["sim-small"]}, "target", "`target` must be an object."),
        ({"target": {}}, "target.model", "`model` must name a model, or `auto`."),
        ({"target": {"model": "gpt-9"}}, "target.model", "The model `gpt-9` does not exist."),
        (
            {"target": {"model": "sim-small", "seed": 1}},
            "target.seed",
            "Unknown field `seed` for a model target.",
        ),
        (
            {"target": {"model": "sim-small", "quality_target": 0.9}},
            "target.quality_target",
            "`quality_target` applies to `auto` only.",
        ),
        (
            {"target": {"model": "auto", "quality_target": 1.5}},
            "target.quality_target",
            "`quality_target` must be a number above 0, at most 1.",
        ),
        (
            {"target": {"model": "sim-small", "params": {"stream": True}}},
            "target.params.stream",
            "`params` may not set `stream`.",
        ),
        (
            {"target": {"model": "sim-small", "params": {"max_tokens": 0}}},
            "target.params.max_tokens",
            "`params`: `max_tokens` must be an integer from 1 to 1000000.",
        ),
        (
            {"target_kind": "prompt", "target": {"prompt": "nope", "model": "sim-small"}},
            "target.prompt",
            None,
        ),
        ({"target_kind": "agent", "target": {"agent": "nobody"}}, "target.agent", "No agent `nobody`."),
        ({"scorers": {"type": "contains"}}, "scorers", "`scorers` must be a list of scorer specs."),
        ({"scorers": [{"type": "telepathy"}]}, "scorers", None),
        (
            {"scorers": [{"type": "pairwise_judge"}]},
            "baseline",
            "A `pairwise_judge` needs a baseline experiment.",
        ),
        ({"concurrency": 0}, "concurrency", "`concurrency` must be an integer from 1 to 32."),
        ({"concurrency": "4"}, "concurrency", "`concurrency` must be an integer from 1 to 32."),
    ],
)
def test_a_mistake_is_refused_naming_the_parameter(
    tenant: TenantFixture, registry: str, fields: dict[str, Any], param: str, message: str | None
) -> None:
    with tenant_context(tenant.tenant):
        refused_param, refused_message = refusal(tenant, **fields)
        assert Experiment.objects.count() == 0
    assert refused_param == param
    if message is not None:
        assert refused_message.startswith(message), refused_message


def test_a_bad_assertion_of_a_case_or_the_version_is_refused(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        by_case = refusal(tenant, make_version(case_assertions=[{"type": "regex"}]))
        by_version = refusal(tenant, make_version(assertions=[{"type": "contains", "mode": "most"}]))
    assert by_case[0] == "version"
    assert by_case[1].startswith("Case `one`: ")
    assert by_version[0] == "scorers"


def test_an_empty_version_is_refused(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        version = make_version()
        version.cases.all().delete()
        assert refusal(tenant, version) == ("version", "The dataset version has no cases.")


def test_a_valid_experiment_is_queued_with_its_target_pinned_and_its_version_locked(
    tenant: TenantFixture, registry: str
) -> None:
    with tenant_context(tenant.tenant):
        create_agent(
            {"name": "helper", "steps": [{"id": "a", "kind": "llm", "model": "sim-small", "prompt": "x"}]}
        )
        create_prompt("faq", "Q: {{ q }}")
        version = make_version()
        agent = create(tenant, version, target_kind="agent", target={"agent": "helper"})
        prompt = create(
            tenant,
            version,
            target_kind="prompt",
            target={"prompt": "faq", "model": "auto", "quality_target": 0.8},
        )
        version.refresh_from_db()
    assert agent.target == {"agent": "helper", "agent_version": 1}
    assert prompt.target == {
        "prompt": "faq",
        "prompt_version": 1,
        "model": "auto",
        "params": {},
        "quality_target": 0.8,
    }
    assert (agent.status, agent.attempts, agent.stream_id.startswith("exp_")) == (
        ExperimentStatus.QUEUED,
        0,
        True,
    )
    assert version.locked_at is not None


def test_another_tenants_key_is_refused(
    tenant: TenantFixture, other_tenant: TenantFixture, registry: str
) -> None:
    with tenant_context(tenant.tenant), pytest.raises(ExperimentInputError) as refused:
        services.create_experiment(
            make_version(),
            "model",
            {"model": "sim-small"},
            [],
            4,
            other_tenant.provisioned.issued_key.api_key,
        )
    assert refused.value.param == "api_key"


def test_a_baseline_of_another_dataset_is_refused(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        baseline = create(tenant, make_version())
        assert refusal(tenant, make_version(), baseline=baseline) == (
            "baseline",
            "The baseline is an experiment of another dataset.",
        )


def test_the_stream_of_a_created_experiment_opens_at_once(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    """Its id is in the API's answer; the first event came only when a worker started
    it, so a client that connected at once got a 404 (and, paused, for long)."""

    def queued() -> Experiment:
        with tenant_context(serving_tenant.tenant):
            return create(serving_tenant, make_version())

    experiment = committed(queued)

    event = first_stream_event(gateway, experiment.stream_id, serving_tenant.admin_key)

    assert (event["type"], event["experiment_id"], event["status"]) == (
        "experiment.progress",
        experiment.pk,
        "queued",
    )
    assert (event["done"], event["total"]) == (0, 1)
