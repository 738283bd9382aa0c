"""Reads: an experiment's results as statistics, two experiments compared, a gate's inputs.

Everything here runs in the tenant's schema; callers (the API, the dashboard,
the gate command, the runner) have entered it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q

from evals.models import CaseResult, Experiment, ResultStatus
from evals.progress import Counts
from evals.statistics import Aggregates, Comparison, Observed, aggregate
from evals.statistics import compare as compare_results


class ComparisonError(ValueError):
    """Two experiments that cannot be compared (a 400)."""


def observed(experiment_id: str) -> list[Observed]:
    rows = CaseResult.objects.filter(experiment_id=experiment_id).values_list(
        "case__key", "passed", "score", "status", "latency_ms", "cost_usd"
    )
    return [
        Observed(key, passed, score, status == ResultStatus.ERRORED, latency_ms, cost_usd)
        for key, passed, score, status, latency_ms, cost_usd in rows
    ]


def outputs(experiment_id: str | None) -> dict[str, Any]:
    """Case key -> the experiment's output (errored cases left out); none without an experiment."""
    if experiment_id is None:
        return {}
    found = CaseResult.objects.filter(experiment_id=experiment_id, status=ResultStatus.SUCCEEDED)
    return dict(found.values_list("case__key", "output"))


def aggregates_of(experiment_id: str) -> Aggregates:
    return aggregate(observed(experiment_id))


def counts(experiment: Experiment) -> Counts:
    """How far the experiment is: its cases, and its results so far."""
    done = CaseResult.objects.filter(experiment=experiment).aggregate(
        done=Count("pk"),
        passed=Count("pk", filter=Q(passed=True)),
        errors=Count("pk", filter=Q(status=ResultStatus.ERRORED)),
    )
    return Counts(experiment.version.cases.count(), done["done"], done["passed"], done["errors"])


def compare(candidate: Experiment, baseline: Experiment) -> Comparison:
    """`candidate` against `baseline`, case by case (matched by key); both of one dataset."""
    if candidate.version.dataset_id != baseline.version.dataset_id:
        raise ComparisonError("The experiments are not of the same dataset.")
    return compare_results(observed(baseline.pk), observed(candidate.pk))


@dataclass(frozen=True)
class GateInputs:
    """What a deploy gate decides on: the pass rate with its 95% interval, the
    cases the target did not answer, the cost, and the regressions against a
    baseline (None without one)."""

    n: int
    errors: int
    pass_rate: float | None
    ci_low: float | None
    ci_high: float | None
    cost_usd: Decimal
    regressions: int | None
    comparison: Comparison | None


def gate_inputs(experiment: Experiment, baseline: Experiment | None = None) -> GateInputs:
    stats = aggregates_of(experiment.pk)
    low, high = stats.pass_rate_ci or (None, None)
    comparison = compare(experiment, baseline) if baseline is not None else None
    return GateInputs(
        n=stats.n,
        errors=stats.errors,
        pass_rate=stats.pass_rate,
        ci_low=low,
        ci_high=high,
        cost_usd=stats.cost_usd,
        regressions=comparison.regressions if comparison is not None else None,
        comparison=comparison,
    )
