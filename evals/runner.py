"""Running an experiment: on a Celery worker (evals/tasks.py), or inline (the gate).

- One runner at a time: a session-level PostgreSQL advisory lock per tenant and
  experiment, released by PostgreSQL when a worker dies, so a redelivered task
  resumes at once while a duplicate delivery beside a live runner does nothing.
- Bounded: at most `experiment.concurrency` cases in flight on the thread's
  event loop (a sliding window: a finished case makes room for the next), each
  target and judge call through the in-process gateway as the experiment's key
  (its limits, budget, ledger and request logs).
- Resumable: a case's result is stored once (unique per experiment and case)
  and only cases without one are called; a case called again after a crash
  keeps its request ids (`CaseResult.request_id_for`), so the ledger bills it once.
- Our own rate limiter's 429 waits (Retry-After) and the call is sent again: it
  is not a failed case. A spent budget stops the experiment, `failed`.
- Between completions: progress on the experiment's stream, and every
  HEARTBEAT_SECONDS a heartbeat (the sweeper queues a silent experiment again)
  and a look at the status (a cancelled experiment stops, its calls in flight
  dropped). At the end, the aggregates (evals/statistics.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError

from aiaas.observability.metrics import EVAL_CASES, series
from evals import progress, scorers, selectors
from evals.models import (
    Case,
    CaseResult,
    Experiment,
    ExperimentStatus,
    ResultStatus,
)
from evals.progress import Counts
from evals.scorers import JudgeContext, Observation, Score, ScorerSpecError, combine
from evals.services import MAX_ERROR_CHARACTERS, finish, lock_version
from evals.targets import Answer, CaseCall, CaseFailedError, Target, TargetError, build
from gateway.errors import GatewayError
from gateway.metering import DENIALS
from ingestion.runtime import runtime
from routing.router import outcomes as router_outcomes
from tenants.context import current_schema_name
from tenants.models import ApiKey
from tenants.selectors import usable_api_key_by_id

logger = logging.getLogger(__name__)
T = TypeVar("T")

OUR_LIMITER_CODES = frozenset({*DENIALS, "limits_unavailable"})
BUDGET_ERROR_TYPE = "insufficient_quota"
RETRY_AFTER_DEFAULT_SECONDS = 1.0
HEARTBEAT_SECONDS = 1.0
PROGRESS_SECONDS = 0.25


class BudgetSpentError(Exception):
    """The experiment's key or tenant has no budget left: no further case can be called."""


@dataclass(frozen=True)
class Evaluated:
    """One case answered (or not) and scored, ready to store."""

    case: Case
    answer: Answer | None
    scores: tuple[Score, ...] = ()
    latency_ms: int = 0
    error: str = ""  # set: the case errored (the target, or its scorers, could not do their part)
    budget_spent: bool = False

    @property
    def verdict(self) -> tuple[bool, float]:
        """Passed, and the weighted mean score (evals.scorers.combine); an error fails, 0."""
        return (False, 0.0) if self.error else combine(self.scores)

    def result(self, experiment_id: str) -> CaseResult:
        answer = self.answer or Answer(None)
        passed, mean = self.verdict
        return CaseResult(
            experiment_id=experiment_id,
            case=self.case,
            status=ResultStatus.ERRORED if self.error else ResultStatus.SUCCEEDED,
            output=answer.output,
            error=self.error[:MAX_ERROR_CHARACTERS],
            scores=[score.as_json() for score in self.scores],
            passed=passed,
            score=mean,
            latency_ms=self.latency_ms,
            prompt_tokens=answer.prompt_tokens + sum(score.prompt_tokens for score in self.scores),
            completion_tokens=answer.completion_tokens + sum(s.completion_tokens for s in self.scores),
            cost_usd=answer.cost_usd + sum((score.cost_usd for score in self.scores), Decimal(0)),
            request_ids=[*answer.request_ids, *(rid for score in self.scores for rid in score.request_ids)],
        )


def run(experiment_id: str) -> None:
    """Run the experiment's cases without a result and finish it, if it is active
    and no live runner holds it."""
    with experiment_lock(experiment_id) as locked:
        if not locked or (experiment := claim(experiment_id)) is None:
            return
        try:
            status, error = start(experiment)
        except SoftTimeLimitExceeded:
            raise
        except Exception as failure:  # a bug or an environment failure must not leave it `running`
            logger.exception("evals: experiment %s failed unexpectedly", experiment_id)
            status, error = ExperimentStatus.FAILED, f"internal error: {type(failure).__name__}: {failure}"
        finish(experiment_id, status, error)


@contextmanager
def experiment_lock(experiment_id: str) -> Iterator[bool]:
    digest = hashlib.blake2b(f"evals:{current_schema_name()}:{experiment_id}".encode(), digest_size=8)
    key = int.from_bytes(digest.digest(), "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        locked = bool(cursor.fetchone()[0])
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def claim(experiment_id: str) -> Experiment | None:
    """The experiment, `running`, with one more attempt; None once it is over."""
    now = timezone.now()
    Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.QUEUED).update(
        status=ExperimentStatus.RUNNING, started_at=now
    )
    claimed = Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.RUNNING).update(
        attempts=F("attempts") + 1, heartbeat_at=now
    )
    return Experiment.objects.select_related("version").get(pk=experiment_id) if claimed else None


def start(experiment: Experiment) -> tuple[ExperimentStatus | None, str]:
    """How the experiment ends: a status (None: it was cancelled) and an error."""
    if experiment.attempts > settings.EVALS_MAX_ATTEMPTS:
        return ExperimentStatus.FAILED, f"Gave up after {settings.EVALS_MAX_ATTEMPTS} attempts."
    api_key = experiment_api_key(experiment)
    if api_key is None:
        return ExperimentStatus.FAILED, "The API key that started this experiment is no longer usable."
    try:
        target = build(experiment.target_kind, experiment.target)
    except TargetError as error:
        return ExperimentStatus.FAILED, error.message
    lock_version(experiment.version_id)
    try:
        return run_cases(experiment, api_key, target)
    except BudgetSpentError as error:
        return ExperimentStatus.FAILED, str(error)


def experiment_api_key(experiment: Experiment) -> ApiKey | None:
    """The experiment's key, if it is still usable and of this schema's tenant (fails closed)."""
    api_key = usable_api_key_by_id(experiment.api_key_id)
    if api_key is None or api_key.tenant.schema_name != current_schema_name():
        return None
    return api_key


@dataclass
class Window:
    """The cases in flight on the thread's loop, and when the runner last looked up."""

    experiment: Experiment
    counts: Counts
    baseline_outputs: dict[str, Any]  # case key -> the baseline experiment's output (pairwise judges)
    tasks: set[asyncio.Task[Evaluated]] = field(default_factory=set)
    beat_at: float = field(default_factory=time.monotonic)
    published_at: float = -math.inf  # never (monotonic time starts at boot, not at minus infinity)


def run_cases(experiment: Experiment, api_key: ApiKey, target: Target) -> tuple[ExperimentStatus | None, str]:
    """The cases without a result, `concurrency` at a time, until none is left or the
    experiment is no longer running (cancelled: None)."""
    rt = runtime()
    loop = rt.runner.get_loop()
    cases = iter(
        list(Case.objects.filter(version_id=experiment.version_id).exclude(results__experiment=experiment))
    )
    window = Window(experiment, selectors.counts(experiment), selectors.outputs(experiment.baseline_id))
    try:
        while True:
            while len(window.tasks) < experiment.concurrency and (case := next(cases, None)) is not None:
                call = CaseCall(experiment.pk, case, api_key, rt.gateway)
                baseline_output = window.baseline_outputs.get(case.key)
                window.tasks.add(loop.create_task(evaluate(experiment, call, target, baseline_output)))
            if not window.tasks:
                return ExperimentStatus.SUCCEEDED, ""
            # A round ends at the first completion, or after a heartbeat's time of none
            # (every case waiting out a Retry-After): the runner still beats and sees a cancel.
            waiting = asyncio.wait(
                window.tasks, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            done, window.tasks = rt.run(waiting)
            if done:
                store(window, [task.result() for task in done])
            if not look_up(window):
                return None, ""
    finally:
        drop(window.tasks)


def drop(tasks: set[asyncio.Task[Evaluated]]) -> None:
    """Cancel the calls in flight (their cases stay without a result, for the next attempt)."""
    for task in tasks:
        task.cancel()
    if tasks:
        runtime().run(asyncio.wait(tasks))


def store(window: Window, evaluated: list[Evaluated]) -> None:
    """Each case's result, inserted once (a result already stored is kept), then progress."""
    CaseResult.objects.bulk_create(
        [item.result(window.experiment.pk) for item in evaluated], ignore_conflicts=True
    )
    for item in evaluated:
        series(EVAL_CASES, "errored" if item.error else "passed" if item.verdict[0] else "failed").inc()
    counts = window.counts
    counts.done += len(evaluated)
    counts.passed += sum(item.verdict[0] for item in evaluated)
    counts.errors += sum(bool(item.error) for item in evaluated)
    if time.monotonic() - window.published_at >= PROGRESS_SECONDS:
        window.published_at = time.monotonic()
        progress.publish(window.experiment, counts)
    spent = next((item for item in evaluated if item.budget_spent), None)
    if spent is not None:
        raise BudgetSpentError(spent.error)


def look_up(window: Window) -> bool:
    """Beat, at most every HEARTBEAT_SECONDS; whether the experiment is still running."""
    if time.monotonic() - window.beat_at < HEARTBEAT_SECONDS:
        return True
    window.beat_at = time.monotonic()
    experiment_id = window.experiment.pk
    return bool(
        Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.RUNNING).update(
            heartbeat_at=timezone.now()
        )
    )


async def evaluate(experiment: Experiment, call: CaseCall, target: Target, baseline_output: Any) -> Evaluated:
    """The case answered by the target and scored; a failure of either is the case's error."""
    case = call.case
    started = time.perf_counter()
    try:
        answer = await patiently(partial(target.answer, call))
    except (GatewayError, CaseFailedError) as error:
        return failed(case, None, error, started)
    latency_ms = round((time.perf_counter() - started) * 1000)
    observation = Observation(
        case.key, case.input, case.expected, answer.output, latency_ms, answer.cost_usd, baseline_output
    )
    judging = JudgeContext(
        call.gateway, call.api_key, CaseResult.request_id_for(experiment.pk, case.key, "judge")
    )
    scores = []
    try:
        for scorer in scorers.build([*experiment.version.assertions, *case.assertions, *experiment.scorers]):
            scores.append(await patiently(partial(scorer.score, observation, judging)))
    except (GatewayError, ScorerSpecError) as error:
        return failed(case, answer, error, started)
    if scores and target.routed:
        await teach_router(call, combine(scores)[0])
    return Evaluated(case, answer, tuple(scores), latency_ms)


async def teach_router(call: CaseCall, passed: bool) -> None:
    """A judged answer of `auto` is an outcome the router learns from, as a user's
    feedback is (routing/router/outcomes.py). Once per request: a case called again
    after a crash keeps its request id, and an answer its JSON schema already
    judged is not judged twice."""
    try:
        await router_outcomes.record_feedback(
            call.gateway.clients.redis, call.api_key.tenant_id, call.request_id, passed
        )
    except router_outcomes.FeedbackError:
        pass
    except RedisError:
        logger.warning("evals: the router did not learn the verdict on %s", call.request_id)


def failed(
    case: Case, answer: Answer | None, error: GatewayError | CaseFailedError | ScorerSpecError, started: float
) -> Evaluated:
    latency_ms = round((time.perf_counter() - started) * 1000)
    if isinstance(error, GatewayError):
        message = f"{error.code or error.type}: {error.message}"
        return Evaluated(case, answer, (), latency_ms, message, budget_spent=error.type == BUDGET_ERROR_TYPE)
    prefix = "scorers: " if isinstance(error, ScorerSpecError) else ""
    return Evaluated(case, answer, (), latency_ms, f"{prefix}{error}")


async def patiently(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, sent again after our limiter's Retry-After while it refuses for rate."""
    for _ in range(settings.EVALS_RATE_LIMIT_RETRIES):
        try:
            return await call()
        except GatewayError as error:
            if error.code not in OUR_LIMITER_CODES or error.type == BUDGET_ERROR_TYPE:
                raise
            await asyncio.sleep(error.retry_after or RETRY_AFTER_DEFAULT_SECONDS)
    return await call()
