"""The router's quality suite: a sample of the tenant's logged traffic, answered by
`auto` and by the top tier under the same judge, compared on the page the
Routing page links to."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from aiaas.formats import usd
from evals import selectors
from evals.models import Dataset, Experiment, ExperimentStatus
from evals.router_quality import (
    ROUTER_DATASET,
    RouterQualityRun,
    sampled_request_ids,
    start_router_quality,
    top_tier_model,
)
from evals.tests.experiments import in_tenant, results, run
from evals.tests.web_factories import make_experiment, make_version
from request_logs.models import RequestLog
from testing.database import committed
from testing.tenants import TenantFixture

PAGE = "/dashboard/evals/router/"


def log_requests(tenant: TenantFixture, count: int) -> None:
    now = timezone.now()
    with tenant_context(tenant.tenant):
        for index in range(count):
            RequestLog.objects.create(
                request_id=f"req_sample{index}",
                model="sim-small",
                request_body={
                    "model": "auto",
                    "messages": [{"role": "user", "content": f"Question {index}"}],
                },
                response_text=f"Answer {index}",
                status=200,
                created_at=now - timedelta(minutes=count - index),
            )


def test_the_sample_is_the_latest_whole_chat_requests_and_never_the_evals_own(tenant: TenantFixture) -> None:
    log_requests(tenant, 3)
    with tenant_context(tenant.tenant):
        now = timezone.now()
        body = {"messages": [{"role": "user", "content": "x"}]}
        RequestLog.objects.create(request_id="req_exp_abc_1", request_body=body, status=200, created_at=now)
        RequestLog.objects.create(request_id="req_failed", request_body=body, status=500, created_at=now)
        RequestLog.objects.create(
            request_id="req_cut", request_body={"truncated": True, "head": "..."}, status=200, created_at=now
        )
        RequestLog.objects.create(
            request_id="req_embed", request_body={"input": "x"}, status=200, created_at=now
        )

        assert sampled_request_ids(2) == ["req_sample2", "req_sample1"]


def test_starting_it_runs_auto_and_the_top_tier_on_one_sample_with_one_judge(
    tenant: TenantFixture, registry: str
) -> None:
    log_requests(tenant, 4)

    response = tenant.web_client().post(
        PAGE, {"sample": "5", "api_key": str(tenant.provisioned.issued_key.api_key.pk)}
    )

    with tenant_context(tenant.tenant):
        top = top_tier_model()
        dataset = Dataset.objects.get(name=ROUTER_DATASET)
        experiments = list(Experiment.objects.order_by("target__model"))
        cases = list(dataset.versions.get().cases.values_list("key", flat=True))
    assert response["Location"] == PAGE
    assert top is not None
    assert top.model_id == "sim-large"
    assert sorted(cases) == ["req_sample0", "req_sample1", "req_sample2", "req_sample3"]
    assert [experiment.target["model"] for experiment in experiments] == ["auto", "sim-large"]
    assert experiments[0].version_id == experiments[1].version_id
    assert experiments[0].scorers == experiments[1].scorers
    assert experiments[0].scorers[0]["type"] == "llm_judge"


def test_without_logged_traffic_it_says_so_with_a_400_page(tenant: TenantFixture, registry: str) -> None:
    response = tenant.web_client().post(
        PAGE, {"sample": "5", "api_key": str(tenant.provisioned.issued_key.api_key.pk)}
    )

    assert response.status_code == 400
    assert "No logged chat requests to sample" in response.content.decode()
    with tenant_context(tenant.tenant):
        assert not Experiment.objects.exists()


def test_a_bad_sample_size_is_a_400_page(tenant: TenantFixture) -> None:
    response = tenant.web_client().post(
        PAGE, {"sample": "0", "api_key": str(tenant.provisioned.issued_key.api_key.pk)}
    )

    assert response.status_code == 400
    assert "greater than or equal to 5" in response.content.decode()


def test_the_page_shows_what_routing_saved_and_what_it_cost_in_quality(tenant: TenantFixture) -> None:
    version = make_version(tenant, cases=4, name=ROUTER_DATASET)
    top = make_experiment(tenant, version, [True, True, True, True], model="sim-large")
    auto = make_experiment(tenant, version, [True, False, True, True], model="auto")
    with tenant_context(tenant.tenant):
        Experiment.objects.filter(pk=top.pk).update(name="router-quality: sim-large", cost_usd="0.0100")
        Experiment.objects.filter(pk=auto.pk).update(name="router-quality: auto", cost_usd="0.0025")

    html = tenant.web_client().get(PAGE).content.decode()

    assert 'id="router-saved">$0.007500<' in html
    assert 'id="router-pass-rates">75% vs. 100%<' in html
    assert 'id="router-regressions">1<' in html
    assert "<code>case-2</code>" in html
    assert f"?baseline={top.pk}&amp;candidate={auto.pk}" in html


def test_the_routing_page_links_to_it(tenant: TenantFixture) -> None:
    html = tenant.web_client().get("/dashboard/routing/").content.decode()

    assert f'href="{PAGE}" id="router-quality-link"' in html


def test_a_real_run_answers_the_sample_with_auto_and_the_top_tier_and_the_page_compares_them(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    marker = uuid.uuid4().hex[:8]

    def log() -> None:
        with tenant_context(serving_tenant.tenant):
            for index in range(6):
                RequestLog.objects.create(
                    request_id=f"req_{marker}_{index}",
                    model="sim-small",
                    request_body={"messages": [{"role": "user", "content": f"Order {marker}-{index}?"}]},
                    response_text=f"Order {index} ships today.",
                    status=200,
                    created_at=timezone.now(),
                )

    committed(log)
    api_key = serving_tenant.provisioned.issued_key.api_key
    # The runs are made here, in process: the queued tasks go to a queue no worker reads.
    with override_settings(EVALS_QUEUE=f"test-router-quality-{os.getpid()}"):
        started: RouterQualityRun = in_tenant(serving_tenant, lambda: start_router_quality(api_key, 6))
    auto, top = run(serving_tenant, started.auto.pk), run(serving_tenant, started.top.pk)

    html = serving_tenant.web_client().get(PAGE).content.decode()

    assert (auto.status, top.status) == (ExperimentStatus.SUCCEEDED, ExperimentStatus.SUCCEEDED)
    assert auto.aggregates is not None
    assert top.aggregates is not None
    assert (auto.aggregates["n"], top.aggregates["n"]) == (6, 6)
    comparison = in_tenant(serving_tenant, lambda: selectors.compare(candidate=auto, baseline=top))
    assert f'id="router-saved">{usd(top.cost_usd - auto.cost_usd)}<' in html
    assert f'id="router-regressions">{comparison.regressions}<' in html
    assert f"?baseline={top.pk}&amp;candidate={auto.pk}" in html
    judged = [
        [score["scorer"] for score in result.scores]
        for experiment in (auto, top)
        for result in results(serving_tenant, experiment.pk).values()
    ]
    assert judged == [["judge"]] * 12


def test_a_cancelled_run_is_listed_but_not_compared(tenant: TenantFixture) -> None:
    version = make_version(tenant, cases=2, name=ROUTER_DATASET)
    top = make_experiment(tenant, version, [True, True], model="sim-large", status=ExperimentStatus.CANCELLED)
    auto = make_experiment(tenant, version, [True, False], model="auto")
    with tenant_context(tenant.tenant):
        Experiment.objects.filter(pk=top.pk).update(name="router-quality: sim-large")
        Experiment.objects.filter(pk=auto.pk).update(name="router-quality: auto")

    html = tenant.web_client().get(PAGE).content.decode()

    assert "No finished run yet." in html
    assert f'href="/dashboard/evals/experiments/{top.pk}/">cancelled</a>' in html
