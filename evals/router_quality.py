"""The router's own quality: `auto` against the top tier on the tenant's real traffic.

`start_router_quality` samples the tenant's latest logged chat requests into a
version of the `router-quality` dataset (each answer kept as the reference)
and starts two experiments on that version with the same judge: one sending
`auto`, one sending the top-tier model. `router_quality_runs` pairs them back
up per version; the comparison of a pair (baseline: the top tier) says what
routing saved and what it cost in quality, with the paired test's verdict.

The sample is evals/traffic.py's: never the evals' own calls. Costs include
the judge's calls, the same judge on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from evals import datasets, selectors, services
from evals.models import Dataset, DatasetVersion, Experiment, ExperimentStatus, TargetKind
from evals.statistics import Comparison
from evals.traffic import whole_chat_requests
from routing.models import ROUTED_MODEL, ProviderModel
from routing.selectors import enabled_models
from tenants.models import ApiKey

ROUTER_DATASET = "router-quality"
DESCRIPTION = "A sample of logged traffic, answered by `auto` and by the top tier (Routing page)."
EXPERIMENT_PREFIX = "router-quality"
JUDGE_RUBRIC = (
    "The reference is an earlier answer to the same request. Pass when the answer serves the "
    "user's request at least as well as the reference: correct, complete and following every "
    "instruction and format the request asks for. Wording and length may differ."
)
CONCURRENCY = 4


class RouterQualityError(ValueError):
    """The suite cannot start: the message says why (no traffic logged, no top tier)."""


@dataclass(frozen=True)
class RouterQualityRun:
    version: DatasetVersion
    auto: Experiment
    top: Experiment

    @property
    def finished(self) -> bool:
        """Both answered every case: a cancelled or failed run is not compared."""
        return self.auto.status == self.top.status == ExperimentStatus.SUCCEEDED

    @property
    def saved_usd(self) -> Decimal:
        """What `auto` saved against sending every case to the top tier."""
        return self.top.cost_usd - self.auto.cost_usd

    def comparison(self) -> Comparison:
        return selectors.compare(candidate=self.auto, baseline=self.top)


def top_tier_model() -> ProviderModel | None:
    """The chat model `auto` escalates to last: the highest tier, the dearest within it."""
    return (
        enabled_models()
        .filter(supports_chat=True)
        .order_by("-tier", "-output_price_per_million", "model_id")
        .first()
    )


def sampled_request_ids(size: int) -> list[str]:
    return list(whole_chat_requests().values_list("request_id", flat=True)[:size])


def sample_version(size: int) -> DatasetVersion:
    request_ids = sampled_request_ids(size)
    if not request_ids:
        raise RouterQualityError(
            "No logged chat requests to sample: turn request logging on and send some traffic first."
        )
    dataset = Dataset.objects.filter(name=ROUTER_DATASET).first()
    if dataset is None:
        dataset = datasets.create_dataset(ROUTER_DATASET, DESCRIPTION)
    try:
        return datasets.replace_cases(dataset, datasets.cases_from_request_logs(request_ids))
    except datasets.DatasetInputError as error:
        raise RouterQualityError(f"A sampled request cannot be a case: {error.message}") from error


def start_router_quality(api_key: ApiKey, size: int) -> RouterQualityRun:
    """Sample the traffic and start both experiments, billed to `api_key`: both or neither."""
    top = top_tier_model()
    if top is None:
        raise RouterQualityError("No enabled chat model to compare `auto` with.")
    judge = [{"type": "llm_judge", "name": "judge", "rubric": JUDGE_RUBRIC, "model": top.model_id}]
    with transaction.atomic():
        version = sample_version(size)
        try:
            auto, top_run = (
                start_one(version, model, judge, api_key) for model in (ROUTED_MODEL, top.model_id)
            )
        except services.ExperimentInputError as error:
            raise RouterQualityError(f"The experiments cannot start: {error.message}") from error
    return RouterQualityRun(version=version, auto=auto, top=top_run)


def start_one(
    version: DatasetVersion, model: str, judge: list[dict[str, Any]], api_key: ApiKey
) -> Experiment:
    return services.create_experiment(
        version=version,
        target_kind=TargetKind.MODEL,
        target={"model": model},
        scorers=judge,
        concurrency=CONCURRENCY,
        api_key=api_key,
        name=f"{EXPERIMENT_PREFIX}: {model}",
    )


def router_quality_runs(limit: int) -> list[RouterQualityRun]:
    """The latest pairs, newest first: per version of the dataset, its newest `auto`
    experiment and its newest experiment of another model."""
    experiments = (
        Experiment.objects.filter(version__dataset__name=ROUTER_DATASET, name__startswith=EXPERIMENT_PREFIX)
        .select_related("version__dataset")
        .order_by("-version__version", "-created_at")[: limit * 4]
    )
    pairs: dict[int, dict[str, Experiment]] = {}
    for experiment in experiments:
        side = "auto" if experiment.target.get("model") == ROUTED_MODEL else "top"
        pairs.setdefault(experiment.version_id, {}).setdefault(side, experiment)
    runs = [
        RouterQualityRun(version=sides["auto"].version, auto=sides["auto"], top=sides["top"])
        for sides in pairs.values()
        if len(sides) == 2
    ]
    return runs[:limit]
