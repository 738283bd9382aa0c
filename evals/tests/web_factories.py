"""Sample rows for the dashboard's tests: datasets with cases, and experiments with
the results and aggregates a finished run stores (written here as the runner
writes them, so the pages are tested without running a model)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django_tenants.utils import tenant_context

from evals.models import (
    Case,
    CaseResult,
    Dataset,
    DatasetVersion,
    Experiment,
    ExperimentStatus,
    ResultStatus,
    TargetKind,
)
from testing.tenants import TenantFixture

_names = itertools.count(1)


def make_version(tenant: TenantFixture, cases: int = 3, name: str | None = None) -> DatasetVersion:
    """Version 1 of a new dataset, its cases keyed case-1, case-2, ..."""
    with tenant_context(tenant.tenant):
        dataset = Dataset.objects.create(name=name or f"dataset-{next(_names)}", description="Sample cases")
        version = DatasetVersion.objects.create(dataset=dataset, version=1)
        Case.objects.bulk_create(
            Case(
                version=version,
                key=f"case-{position}",
                position=position,
                input={"messages": [{"role": "user", "content": f"Where is order {position}?"}]},
                expected=f"Order {position} ships today.",
                tags=["orders"],
            )
            for position in range(1, cases + 1)
        )
        return version


def make_experiment(
    tenant: TenantFixture,
    version: DatasetVersion,
    verdicts: Sequence[bool] = (),
    *,
    model: str = "sim-small",
    status: str = ExperimentStatus.SUCCEEDED,
    finished_at: datetime | None = None,
) -> Experiment:
    """An experiment whose first cases got `verdicts` (judged, with reasoning), with
    the aggregates the runner would store when it is finished."""
    with tenant_context(tenant.tenant):
        finished = status not in (ExperimentStatus.QUEUED, ExperimentStatus.RUNNING)
        experiment = Experiment.objects.create(
            name=f"{model} run",
            version=version,
            target_kind=TargetKind.MODEL,
            target={"model": model},
            scorers=[{"type": "llm_judge", "rubric": "Answers the question."}],
            status=status,
            api_key_id=tenant.provisioned.issued_key.api_key.pk,
            stream_id="evals_" + "b" * 32,
            aggregates=aggregates_of(verdicts) if finished else None,
            cost_usd=Decimal("0.0001") * len(verdicts),
            finished_at=(finished_at or timezone.now()) if finished else None,
        )
        cases = version.cases.order_by("position")
        CaseResult.objects.bulk_create(
            result_of(experiment, case, passed) for case, passed in zip(cases, verdicts, strict=False)
        )
        return experiment


def result_of(experiment: Experiment, case: Case, passed: bool) -> CaseResult:
    reason = "It names the shipping date." if passed else "It never says when the order ships."
    return CaseResult(
        experiment=experiment,
        case=case,
        status=ResultStatus.SUCCEEDED,
        output=f"Answer to {case.key}",
        scores=[{"scorer": "llm_judge", "score": float(passed), "passed": passed, "reason": reason}],
        passed=passed,
        score=float(passed),
        latency_ms=120,
        cost_usd=Decimal("0.0001"),
        request_ids=[CaseResult.request_id_for(experiment.pk, case.key)],
    )


def aggregates_of(verdicts: Sequence[bool]) -> dict[str, Any]:
    count = len(verdicts)
    rate = sum(verdicts) / count if count else None
    return {
        "n": count,
        "passed": sum(verdicts),
        "errors": 0,
        "pass_rate": rate,
        "ci_low": rate and rate * 0.8,
        "ci_high": rate and min(1.0, rate * 1.1),
        "mean_score": rate,
        "score_ci_low": rate,
        "score_ci_high": rate,
        "cost_usd": str(Decimal("0.0001") * count),
        "latency_ms": {"p50": 120.0, "p95": 120.0},
    }
