"""A worker SIGKILLed mid-experiment: the task is delivered again to another worker,
which calls only the cases without a result; finished cases are not called again
and the ledger holds each case's request id once."""

from __future__ import annotations

import os
import signal
from datetime import datetime
from typing import Any

import httpx
from django.db.models import Count

from agents.tests.test_worker_killed import database_url_of_this_run, wait_for, worker_process
from billing.models import UsageEvent
from evals.models import CaseResult, ExperimentStatus
from evals.tests.experiments import PARAMS, create, in_tenant, make_version, read
from testing.database import committed
from testing.tenants import TenantFixture
from testing.usage import drain_usage_events

CASES = 200
CONCURRENCY = 2
MODEL = "sim-medium"  # no other test of this module calls it: its upstream count is this experiment's


def upstream_calls(simulator_url: str) -> int:
    stats: dict[str, Any] = httpx.get(simulator_url.removesuffix("/v1") + "/_sim/stats", timeout=5).json()
    return int(stats["requests_by_model"].get(MODEL, 0))


def finished_cases(tenant: TenantFixture, experiment_id: str) -> dict[str, datetime]:
    def load() -> dict[str, datetime]:
        found = CaseResult.objects.filter(experiment_id=experiment_id)
        return dict(found.values_list("case__key", "created_at"))

    return in_tenant(tenant, load)


def test_a_worker_killed_mid_experiment_resumes_without_calling_finished_cases_again(
    serving_tenant: TenantFixture, registry: str, simulator_url: str, settings: Any
) -> None:
    queue = f"test-evals-killed-{os.getpid()}"
    settings.EVALS_QUEUE = queue
    environ = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_run(),
        "USAGE_STREAM": settings.USAGE_STREAM,
    }
    version_id = make_version(
        serving_tenant, [{"messages": [{"role": "user", "content": f"Killed {n}."}]} for n in range(CASES)]
    )
    calls_before = upstream_calls(simulator_url)
    target = {"model": MODEL, "params": PARAMS}
    with worker_process(queue, f"first-evals-{os.getpid()}@test", environ) as first:
        experiment_id = create(
            serving_tenant, version_id, target=target, concurrency=CONCURRENCY, enqueue=True
        )
        wait_for(lambda: len(finished_cases(serving_tenant, experiment_id)) >= 20, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    done_before = finished_cases(serving_tenant, experiment_id)
    assert read(serving_tenant, experiment_id).status == ExperimentStatus.RUNNING
    assert 20 <= len(done_before) < CASES

    with worker_process(queue, f"second-evals-{os.getpid()}@test", environ):
        wait_for(lambda: read(serving_tenant, experiment_id).status == ExperimentStatus.SUCCEEDED, timeout=90)

    experiment = read(serving_tenant, experiment_id)
    assert experiment.attempts == 2
    assert experiment.aggregates is not None
    assert (experiment.aggregates["n"], experiment.aggregates["passed"]) == (CASES, CASES)
    done_after = finished_cases(serving_tenant, experiment_id)
    assert len(done_after) == CASES
    assert {key: done_after[key] for key in done_before} == done_before
    # Each case reached the provider once, but for the cases in flight when the worker died.
    assert CASES <= upstream_calls(simulator_url) - calls_before <= CASES + CONCURRENCY
    committed(lambda: drain_usage_events(settings.USAGE_STREAM))

    def ledger() -> dict[str, int]:
        rows = UsageEvent.objects.filter(request_id__startswith=f"req_{experiment_id}_")
        return dict(rows.values_list("request_id").annotate(rows=Count("pk")))

    billed = committed(ledger)
    assert len(billed) == CASES
    assert set(billed.values()) == {1}
    assert experiment.cost_usd == sum(
        in_tenant(
            serving_tenant,
            lambda: list(
                CaseResult.objects.filter(experiment_id=experiment_id).values_list("cost_usd", flat=True)
            ),
        )
    )
