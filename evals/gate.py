"""The deploy gate: does an experiment meet a tenant's bar? And the JSON of a comparison.

One rule for the command (`manage.py eval_gate`), the API (`POST
/api/v1/experiments/{id}/gate`) and the nightly run: an experiment passes
when it succeeded, no case errored (the target gave no answer to score: a
provider down or every request shed is not a pass), its pass rate is at least
`min_pass_rate` (when given), and, against a baseline, at most `max_regressions` cases regressed (0 when a
baseline is given without it). A regression is a case that passed in the
baseline and fails now, or whose score fell by evals.statistics.SCORE_STEP.
The report says why it failed in `reasons`, so a CI log is enough to act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evals import golden, runner
from evals.datasets import DatasetInputError, latest_version
from evals.models import Dataset, Experiment, ExperimentStatus, TargetKind
from evals.selectors import GateInputs, gate_inputs
from evals.services import create_experiment
from evals.statistics import Change, Comparison
from tenants.models import ApiKey, ApiKeyScope, Tenant

# The gate's report names at most this many regressed cases.
MAX_LISTED_CASES = 100


@dataclass(frozen=True)
class GateRule:
    min_pass_rate: float | None = None
    max_regressions: int | None = None


def gate_report(experiment: Experiment, baseline: Experiment | None, rule: GateRule) -> dict[str, Any]:
    """The gate's one JSON object (`passed` and, when it did not, the `reasons`)."""
    inputs = gate_inputs(experiment, baseline)
    max_regressions = rule.max_regressions
    if baseline is not None and max_regressions is None:
        max_regressions = 0
    reasons = failures(experiment, inputs, rule.min_pass_rate, max_regressions)
    comparison = inputs.comparison
    return {
        "suite": experiment.version.dataset.name,
        "dataset_version": experiment.version.version,
        "experiment": experiment.pk,
        "status": experiment.status,
        "baseline": baseline.pk if baseline is not None else None,
        "n": inputs.n,
        "errored": inputs.errors,
        "pass_rate": inputs.pass_rate,
        "ci_low": inputs.ci_low,
        "ci_high": inputs.ci_high,
        "cost_usd": f"{inputs.cost_usd:f}",
        "regressions": inputs.regressions,
        "regressed_cases": regressed_keys(comparison),
        "mcnemar_p": comparison.mcnemar_p if comparison is not None else None,
        "min_pass_rate": rule.min_pass_rate,
        "max_regressions": max_regressions,
        "passed": not reasons,
        "reasons": reasons,
    }


def failures(
    experiment: Experiment, inputs: GateInputs, min_pass_rate: float | None, max_regressions: int | None
) -> list[str]:
    pass_rate, regressions = inputs.pass_rate, inputs.regressions
    reasons = []
    if experiment.status != ExperimentStatus.SUCCEEDED:
        reasons.append(f"the experiment is {experiment.status}, not succeeded")
    if inputs.errors:
        reasons.append(f"{inputs.errors} of {inputs.n} cases errored (the target gave no answer to score)")
    if min_pass_rate is not None and (pass_rate is None or pass_rate < min_pass_rate):
        shown = "none" if pass_rate is None else f"{pass_rate:.4f}"
        reasons.append(f"pass rate {shown} is below {min_pass_rate}")
    if max_regressions is not None and regressions is not None and regressions > max_regressions:
        reasons.append(f"{regressions} cases regressed (at most {max_regressions} allowed)")
    return reasons


def regressed_keys(comparison: Comparison | None) -> list[str]:
    if comparison is None:
        return []
    regressed = [case.key for case in comparison.cases if case.change == Change.REGRESSED]
    return regressed[:MAX_LISTED_CASES]


def comparison_json(candidate: Experiment, baseline: Experiment, comparison: Comparison) -> dict[str, Any]:
    """Two experiments side by side: the counts, the test, the deltas, and the changed
    cases (regressions first) with both results' verdict and score."""
    return {
        "object": "experiment.comparison",
        "experiment": candidate.pk,
        "baseline": baseline.pk,
        "regressed": comparison.count(Change.REGRESSED),
        "improved": comparison.count(Change.IMPROVED),
        "unchanged": comparison.count(Change.UNCHANGED),
        "only_in_baseline": list(comparison.only_in_baseline),
        "only_in_experiment": list(comparison.only_in_candidate),
        "mcnemar_p": comparison.mcnemar_p,
        "significant": comparison.significant,
        "pass_rate_delta": comparison.pass_rate_delta,
        "pass_rate_delta_ci": interval(comparison.pass_rate_delta_ci),
        "mean_score_delta": comparison.mean_score_delta,
        "mean_score_delta_ci": interval(comparison.mean_score_delta_ci),
        "cost_delta_usd": f"{comparison.cost_delta_usd:f}",
        "latency_p50_delta_ms": comparison.latency_p50_delta_ms,
        "latency_p95_delta_ms": comparison.latency_p95_delta_ms,
        "cases": [
            {
                "key": case.key,
                "change": case.change.value,
                "baseline": {"passed": case.baseline.passed, "score": case.baseline.score},
                "experiment": {"passed": case.candidate.passed, "score": case.candidate.score},
            }
            for case in comparison.cases
            if case.change != Change.UNCHANGED
        ],
    }


def interval(bounds: tuple[float, float] | None) -> list[float] | None:
    return list(bounds) if bounds is not None else None


def suite_dataset(name: str) -> Dataset:
    """The tenant's dataset `name`; a golden suite's is copied on first use."""
    if name in golden.suites():
        return golden.golden_dataset(name)[0]
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        raise DatasetInputError(f"No dataset named `{name}`.", param="suite", code="not_found", status=404)
    return dataset


def model_target(dataset: Dataset, model: str) -> dict[str, Any]:
    """A model target for the dataset; a golden suite's asks for its answer format."""
    if dataset.name in golden.suites():
        return {"model": model, "params": {"response_format": golden.suite(dataset.name).response_format()}}
    return {"model": model}


def run_suite(
    dataset: Dataset, model: str, api_key: ApiKey, concurrency: int, schedule: str = ""
) -> Experiment:
    """An experiment of the dataset's latest version against `model`, run to its end in
    this process (no worker: what a CI job needs), billed to `api_key`."""
    experiment = create_experiment(
        latest_version(dataset),
        TargetKind.MODEL,
        model_target(dataset, model),
        [],
        concurrency,
        api_key,
        name=f"gate: {model}",
        schedule=schedule,
        enqueue=False,
    )
    runner.run(experiment.pk)
    return Experiment.objects.select_related("version__dataset").get(pk=experiment.pk)


def billed_key(tenant: Tenant, prefix: str | None) -> ApiKey:
    """The key a gate run is billed to: the tenant's usable key with `prefix`, or, without
    one, its oldest usable admin or inference key. DatasetInputError if none."""
    keys = ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).order_by("created_at", "pk")
    if prefix:
        keys = keys.filter(prefix=prefix)
    else:
        keys = keys.filter(scopes__overlap=[ApiKeyScope.ADMIN, ApiKeyScope.INFERENCE])
    key = next((key for key in keys if key.is_usable()), None)
    if key is None:
        raise DatasetInputError("No usable API key of the tenant to bill the run to.", param="key_prefix")
    return key
