"""Writes: starting and cancelling experiments.

An experiment is checked whole when it is created (its target, its scorers and
every case's assertions, its concurrency), so a mistake is a 400 before any
case is called; its dataset version is locked (its cases read-only from then
on), and its run is enqueued once the transaction commits (evals/tasks.py).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from capacity.levels import PausedWork
from capacity.state import is_paused
from evals import progress, scorers, selectors
from evals.models import ACTIVE_EXPERIMENT_STATUSES, DatasetVersion, Experiment, ExperimentStatus
from evals.scorers import ScorerSpecError
from evals.targets import TargetError, normalise
from realtime import streams
from tenants.context import current_schema_name
from tenants.models import ApiKey

MAX_CONCURRENCY = 32
MAX_ERROR_CHARACTERS = 2000
PAIRWISE_JUDGE = "pairwise_judge"


class ExperimentInputError(ValueError):
    """Input the caller can fix: a 400 naming the parameter."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def create_experiment(
    version: DatasetVersion,
    target_kind: str,
    target: Any,
    scorers: Any,
    concurrency: Any,
    api_key: ApiKey,
    name: str = "",
    schedule: str = "",
    *,
    baseline: Experiment | None = None,
    enqueue: bool = True,
) -> Experiment:
    """A queued experiment of `version` against the target, attributed to `api_key`
    (of this schema's tenant), sent to the evals queue on commit unless `enqueue`
    is false (its caller runs it: `runner.run`). `baseline`: an experiment of the
    same dataset whose outputs a pairwise judge compares with (required by one).
    ExperimentInputError if invalid."""
    if api_key.tenant.schema_name != current_schema_name():
        raise ExperimentInputError("The API key is not this organization's.", "api_key")
    try:
        pinned = normalise(target_kind, target)
    except TargetError as error:
        raise ExperimentInputError(error.message, error.param) from None
    check_scorers(version, scorers)
    check_baseline(version, scorers, baseline)
    with transaction.atomic():
        experiment = Experiment.objects.create(
            name=name,
            version=version,
            target_kind=target_kind,
            target=pinned,
            scorers=scorers,
            baseline=baseline,
            concurrency=check_concurrency(concurrency),
            api_key_id=api_key.pk,
            stream_id=streams.new_stream_id("exp"),
            schedule=schedule,
        )
        lock_version(version.pk)
        # Before the run is sent (callbacks run in order), and only once the experiment exists.
        total, schema_name = version.cases.count(), current_schema_name()
        transaction.on_commit(lambda: progress.publish_queued(experiment, schema_name, total))
        if enqueue:
            enqueue_experiment(experiment.pk)
    return experiment


def check_scorers(version: DatasetVersion, specs: Any) -> None:
    """The experiment's scorers, the version's and each case's assertions, built once to check them."""
    if not isinstance(specs, list):
        raise ExperimentInputError("`scorers` must be a list of scorer specs.", "scorers")
    if not version.cases.exists():
        raise ExperimentInputError("The dataset version has no cases.", "version")
    try:
        scorers.build([*version.assertions, *specs])
    except ScorerSpecError as error:
        raise ExperimentInputError(str(error), "scorers") from None
    checked: set[str] = set()  # cases often share their assertions: each list is built once
    for key, assertions in version.cases.exclude(assertions=[]).values_list("key", "assertions"):
        text = json.dumps(assertions, sort_keys=True)
        if text in checked:
            continue
        try:
            scorers.build(assertions)
        except ScorerSpecError as error:
            raise ExperimentInputError(f"Case `{key}`: {error}", "version") from None
        checked.add(text)


def check_baseline(version: DatasetVersion, specs: list[Any], baseline: Experiment | None) -> None:
    if baseline is None:
        if any(isinstance(spec, dict) and spec.get("type") == PAIRWISE_JUDGE for spec in specs):
            raise ExperimentInputError("A `pairwise_judge` needs a baseline experiment.", "baseline")
        return
    if baseline.version.dataset_id != version.dataset_id:
        raise ExperimentInputError("The baseline is an experiment of another dataset.", "baseline")


def check_concurrency(concurrency: Any) -> int:
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise ExperimentInputError(
            f"`concurrency` must be an integer from 1 to {MAX_CONCURRENCY}.", "concurrency"
        )
    return int(concurrency)


def lock_version(version_id: int) -> None:
    """Make the version's cases read-only: an experiment uses it (editing makes a new version)."""
    DatasetVersion.objects.filter(pk=version_id, locked_at__isnull=True).update(locked_at=timezone.now())


def cancel_experiment(experiment: Experiment) -> Experiment:
    """Stop the experiment: `cancelled` at once, with the aggregates of the cases done.
    Its runner, if one holds it, drops the calls in flight at its next look (within
    a second or so) and writes the aggregates again. One already over is unchanged."""
    cancelled = Experiment.objects.filter(pk=experiment.pk, status__in=ACTIVE_EXPERIMENT_STATUSES).update(
        status=ExperimentStatus.CANCELLED, finished_at=timezone.now()
    )
    if cancelled:
        finish(experiment.pk, None)
    experiment.refresh_from_db()
    return experiment


def finish(experiment_id: str, status: ExperimentStatus | None, error: str = "") -> Experiment:
    """The aggregates of the stored results written, and the status too (None: kept)
    if the experiment is still active; the end published on its stream."""
    stats = selectors.aggregates_of(experiment_id)
    if status is not None:
        Experiment.objects.filter(pk=experiment_id, status__in=ACTIVE_EXPERIMENT_STATUSES).update(
            status=status, error=error[:MAX_ERROR_CHARACTERS], finished_at=timezone.now()
        )
    Experiment.objects.filter(pk=experiment_id).update(aggregates=stats.as_json(), cost_usd=stats.cost_usd)
    experiment = Experiment.objects.get(pk=experiment_id)
    progress.publish(experiment)
    return experiment


def enqueue_experiment(experiment_id: str) -> None:
    """Send the experiment's run once the current transaction commits (at once outside
    one). While a degrade level pauses evals it stays `queued`, and is sent when the
    level allows it (capacity.tasks.resume_paused_work)."""
    from evals.tasks import run_experiment

    if is_paused(PausedWork.EVALS):
        return

    transaction.on_commit(
        lambda: run_experiment.apply_async(args=[experiment_id], queue=settings.EVALS_QUEUE)
    )
