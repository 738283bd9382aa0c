"""The tenant's limits bound an experiment: a rate limit's 429 is waited out (the
case is sent again, not failed), a spent budget stops the experiment."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from agents.tests.test_worker_killed import wait_for
from evals import services
from evals.models import Experiment, ExperimentStatus, ResultStatus
from evals.tests.experiments import create, in_tenant, make_version, results, run
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture

BURST = 60  # a key of 60 requests a minute is admitted 60 at once, then one a second


def key_with(tenant: TenantFixture, **limits: Any) -> Any:
    issued = committed(
        lambda: create_api_key(tenant.tenant, name="eval limits", scopes=[ApiKeyScope.INFERENCE], **limits)
    )
    return issued.api_key


def test_cases_our_rate_limit_refuses_wait_and_are_sent_again(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    api_key = key_with(serving_tenant, requests_per_minute=BURST)
    cases = BURST + 2
    version_id = make_version(
        serving_tenant, [{"messages": [{"role": "user", "content": f"Limited {n}."}]} for n in range(cases)]
    )
    experiment_id = create(serving_tenant, version_id, api_key=api_key, concurrency=8)
    started = time.monotonic()

    experiment = run(serving_tenant, experiment_id)

    assert time.monotonic() - started >= 1.0  # the two past the burst waited for their turn
    assert experiment.status == ExperimentStatus.SUCCEEDED
    assert experiment.aggregates is not None
    assert (experiment.aggregates["n"], experiment.aggregates["passed"], experiment.aggregates["errors"]) == (
        cases,
        cases,
        0,
    )


def test_a_spent_budget_fails_the_experiment_and_calls_no_further_case(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    api_key = key_with(serving_tenant, monthly_spend_budget_usd=Decimal(0))
    version_id = make_version(
        serving_tenant, [{"messages": [{"role": "user", "content": f"Broke {n}."}]} for n in range(5)]
    )
    experiment_id = create(serving_tenant, version_id, api_key=api_key, concurrency=1)

    experiment = run(serving_tenant, experiment_id)

    assert experiment.status == ExperimentStatus.FAILED
    assert experiment.error == "key_spend_budget: This API key's monthly spend budget has been reached."
    stored = results(serving_tenant, experiment_id)
    assert list(stored) == ["case-000"]
    assert stored["case-000"].status == ResultStatus.ERRORED
    assert experiment.aggregates is not None
    assert experiment.aggregates["n"] == 1


def test_a_cancel_reaches_a_runner_whose_cases_all_wait_out_a_retry_after(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    api_key = key_with(serving_tenant, requests_per_minute=2)  # two at once, then one each 30 s
    version_id = make_version(
        serving_tenant, [{"messages": [{"role": "user", "content": f"Waiting {n}."}]} for n in range(6)]
    )
    experiment_id = create(serving_tenant, version_id, api_key=api_key, concurrency=4)
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(run, serving_tenant, experiment_id)
        wait_for(lambda: len(results(serving_tenant, experiment_id)) == 2, timeout=20)
        time.sleep(1.5)  # the other two in flight are waiting out the limiter's Retry-After
        in_tenant(
            serving_tenant, lambda: services.cancel_experiment(Experiment.objects.get(pk=experiment_id))
        )
        cancelled_at = time.monotonic()
        experiment = running.result(timeout=20)

    assert time.monotonic() - cancelled_at < 5  # not the 30 s the limiter asked for
    assert experiment.status == ExperimentStatus.CANCELLED
    assert len(results(serving_tenant, experiment_id)) == 2  # the two the burst admitted
