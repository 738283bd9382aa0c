"""Datasets and experiments made for the runner's tests, committed (a worker, or the
runner on a thread of its own, must see them), with answers planted through the
simulated provider's determinism."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django_tenants.utils import tenant_context

from evals import runner, services
from evals.models import Case, CaseResult, Dataset, DatasetVersion, Experiment
from gateway.simulated.provider import VOCABULARY, ChatMessage, answer_words
from ingestion.runtime import close_runtime
from tenants.models import ApiKey
from testing.database import committed
from testing.tenants import TenantFixture

T = TypeVar("T")
ANSWER_WORDS = 8
# Every call of these tests asks for this many words: the answer is known in advance.
PARAMS = {"max_tokens": ANSWER_WORDS}


def in_tenant(tenant: TenantFixture, work: Callable[[], T]) -> T:
    """`work` in the tenant's schema on a connection of its own (committed), as a worker runs."""

    def run() -> T:
        with tenant_context(tenant.tenant):
            try:
                return work()
            finally:
                close_runtime()

    return committed(run)


def answer_to(content: str) -> str:
    """What the simulated provider answers to one user message, at ANSWER_WORDS words."""
    return " ".join(answer_words((ChatMessage("user", content),), ANSWER_WORDS))


def absent_word(answer: str) -> str:
    return next(word for word in VOCABULARY if word not in answer)


def make_version(
    tenant: TenantFixture,
    inputs: list[dict[str, Any]],
    *,
    expected: list[Any] | None = None,
    assertions: list[list[dict[str, Any]]] | None = None,
    version_assertions: list[dict[str, Any]] | None = None,
) -> int:
    """A new dataset's version 1 with one case per input (keys `case-000`, ...); its id."""

    def write() -> int:
        with tenant_context(tenant.tenant):
            dataset = Dataset.objects.create(name=f"test-{uuid.uuid4().hex[:12]}")
            version = DatasetVersion.objects.create(
                dataset=dataset, version=1, assertions=version_assertions or []
            )
            Case.objects.bulk_create(
                Case(
                    version=version,
                    key=f"case-{n:03}",
                    position=n,
                    input=case_input,
                    expected=(expected or [None] * len(inputs))[n],
                    assertions=(assertions or [[]] * len(inputs))[n],
                )
                for n, case_input in enumerate(inputs)
            )
            return version.pk

    return committed(write)


def create(tenant: TenantFixture, version_id: int, api_key: ApiKey | None = None, **fields: Any) -> str:
    """A committed experiment of the version (a model target unless `fields` say otherwise),
    not enqueued, as the tenant's first key unless `api_key` is given."""
    arguments: dict[str, Any] = {
        "target_kind": "model",
        "target": {"model": "sim-small", "params": PARAMS},
        "scorers": [],
        "concurrency": 4,
        "enqueue": False,
        **fields,
    }

    def write() -> str:
        with tenant_context(tenant.tenant):
            version = DatasetVersion.objects.get(pk=version_id)
            key = api_key or tenant.provisioned.issued_key.api_key
            return services.create_experiment(version, api_key=key, **arguments).pk

    return committed(write)


def run(tenant: TenantFixture, experiment_id: str) -> Experiment:
    def work() -> Experiment:
        runner.run(experiment_id)
        return Experiment.objects.get(pk=experiment_id)

    return in_tenant(tenant, work)


def read(tenant: TenantFixture, experiment_id: str) -> Experiment:
    return in_tenant(tenant, lambda: Experiment.objects.select_related("version").get(pk=experiment_id))


def results(tenant: TenantFixture, experiment_id: str) -> dict[str, CaseResult]:
    def load() -> dict[str, CaseResult]:
        found = CaseResult.objects.filter(experiment_id=experiment_id).select_related("case")
        return {result.case.key: result for result in found}

    return in_tenant(tenant, load)
