"""Datasets and their cases, created in a tenant's schema through the services."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django_tenants.utils import tenant_context

from evals import datasets
from evals.datasets import CaseData
from evals.models import (
    ACTIVE_EXPERIMENT_STATUSES,
    CaseResult,
    Dataset,
    DatasetVersion,
    Experiment,
    ExperimentStatus,
    ResultStatus,
    TargetKind,
)
from evals.selectors import aggregates_of
from testing.tenants import TenantFixture

_names = itertools.count(1)


def case_data(n: int, **fields: Any) -> CaseData:
    values: dict[str, Any] = {
        "key": f"case-{n}",
        "input": {"messages": [{"role": "user", "content": f"Question {n}?"}]},
        "expected": f"Answer {n}.",
        "tags": ["smoke"],
        "assertions": [{"type": "contains", "value": f"Answer {n}"}],
        **fields,
    }
    return CaseData(**values)


def make_dataset(tenant: TenantFixture, cases: int = 2, name: str | None = None) -> Dataset:
    with tenant_context(tenant.tenant):
        return datasets.create_dataset(
            name or f"dataset-{next(_names)}",
            "A test dataset.",
            cases=[case_data(n) for n in range(1, cases + 1)],
        )


def lock_latest(tenant: TenantFixture, dataset: Dataset) -> DatasetVersion:
    """As an experiment's start does (evals/services.py)."""
    with tenant_context(tenant.tenant):
        version = datasets.latest_version(dataset)
        version.locked_at = timezone.now()
        version.save(update_fields=["locked_at"])
        return version


def make_experiment(
    tenant: TenantFixture,
    dataset: Dataset | None = None,
    verdicts: dict[str, bool] | None = None,
    status: str = ExperimentStatus.SUCCEEDED,
    schedule: str = "",
) -> Experiment:
    """An experiment of the dataset's latest version (locked), with one stored result
    per `verdicts` entry (case key: passed) and its aggregates, as the runner leaves it."""
    dataset = dataset or make_dataset(tenant)
    verdicts = {"case-1": True, "case-2": False} if verdicts is None else verdicts
    version = lock_latest(tenant, dataset)
    with tenant_context(tenant.tenant):
        experiment = Experiment.objects.create(
            version=version,
            target_kind=TargetKind.MODEL,
            target={"model": "sim-small"},
            api_key_id=tenant.provisioned.issued_key.api_key.pk,
            status=status,
            schedule=schedule,
        )
        cases = {case.key: case for case in version.cases.all()}
        CaseResult.objects.bulk_create(
            CaseResult(
                experiment=experiment,
                case=cases[key],
                status=ResultStatus.SUCCEEDED,
                output=f"Output for {key}.",
                scores=[{"scorer": "contains", "score": float(passed), "passed": passed, "reason": ""}],
                passed=passed,
                score=float(passed),
                latency_ms=100,
                cost_usd=Decimal("0.001"),
                request_ids=[CaseResult.request_id_for(experiment.pk, key)],
            )
            for key, passed in verdicts.items()
        )
        if status not in ACTIVE_EXPERIMENT_STATUSES:
            stats = aggregates_of(experiment.pk)
            experiment.aggregates, experiment.cost_usd = stats.as_json(), stats.cost_usd
            experiment.save(update_fields=["aggregates", "cost_usd"])
        return experiment
