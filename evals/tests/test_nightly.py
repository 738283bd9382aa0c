"""The nightly run: started once a day for each dataset opted in, and an alert by
webhook (a real HTTP server here) and email when it regressed against the previous
nightly run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import uvicorn
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evals import nightly
from evals.models import Dataset, Experiment, ExperimentStatus
from evals.tasks import nightly_tick
from evals.tests.factories import make_dataset, make_experiment
from testing.servers import LOOPBACK_SERVER_PORTS, serving
from testing.tenants import TenantFixture


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server that keeps the JSON bodies POSTed to /hook."""
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        return JSONResponse({"ok": True})

    async def ready(request: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/ready", ready)])

    def build(host: str, port: int) -> uvicorn.Server:
        return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

    with (
        serving(build, "/ready") as root,
        override_settings(
            EVALS_ALERT_ALLOWED_HOSTS=["127.0.0.1"], OUTBOUND_DEFAULT_PORTS=LOOPBACK_SERVER_PORTS
        ),
    ):
        yield f"{root}/hook", received


def opted_in(tenant: TenantFixture, dataset: Dataset, **fields: Any) -> None:
    with tenant_context(tenant.tenant):
        Dataset.objects.filter(pk=dataset.pk).update(
            nightly_model="sim-small", nightly_api_key_id=tenant.provisioned.issued_key.api_key.pk, **fields
        )


def nightly_pair(
    tenant: TenantFixture, dataset: Dataset, second: dict[str, bool]
) -> tuple[Experiment, Experiment]:
    first = make_experiment(tenant, dataset, {"case-1": True, "case-2": True}, schedule=nightly.NIGHTLY)
    latest = make_experiment(tenant, dataset, second, schedule=nightly.NIGHTLY)
    with tenant_context(tenant.tenant):
        Experiment.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=1))
        Experiment.objects.filter(pk=first.pk).update(nightly_checked_at=timezone.now() - timedelta(days=1))
    return first, latest


def test_a_regression_alerts_the_webhook_and_the_email_once(
    tenant: TenantFixture, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    dataset = make_dataset(tenant, cases=2)
    opted_in(tenant, dataset, alert_webhook_url=url, alert_email="quality@example.com")
    first, latest = nightly_pair(tenant, dataset, {"case-1": True, "case-2": False})
    mail.outbox.clear()

    with tenant_context(tenant.tenant):
        nightly.tick_schema(timezone.now().replace(hour=1))
        nightly.tick_schema(timezone.now().replace(hour=1))

    assert len(received) == 1
    alert = received[0]
    assert (alert["type"], alert["dataset"]) == ("evals.nightly_regression", dataset.name)
    report = alert["report"]
    assert (report["experiment"], report["baseline"], report["regressions"], report["passed"]) == (
        latest.pk,
        first.pk,
        1,
        False,
    )
    assert report["regressed_cases"] == ["case-2"]
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["quality@example.com"], f"Eval regression: {dataset.name} ({latest.pk})")
    ]


def test_no_regression_no_alert(tenant: TenantFixture, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    dataset = make_dataset(tenant, cases=2)
    opted_in(tenant, dataset, alert_webhook_url=url)
    _, latest = nightly_pair(tenant, dataset, {"case-1": True, "case-2": True})

    with tenant_context(tenant.tenant):
        nightly.tick_schema(timezone.now().replace(hour=1))
        checked = Experiment.objects.get(pk=latest.pk).nightly_checked_at

    assert received == []
    assert checked is not None


def test_a_failed_nightly_run_alerts(
    tenant: TenantFixture, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    dataset = make_dataset(tenant, cases=2)
    opted_in(tenant, dataset, alert_webhook_url=url)
    make_experiment(tenant, dataset, {}, status=ExperimentStatus.FAILED, schedule=nightly.NIGHTLY)

    with tenant_context(tenant.tenant):
        nightly.tick_schema(timezone.now().replace(hour=1))

    assert [alert["report"]["reasons"] for alert in received] == [["the experiment is failed, not succeeded"]]


@pytest.mark.usefixtures("registry")
def test_a_nightly_run_starts_once_a_day_from_the_hour(tenant: TenantFixture) -> None:
    dataset = make_dataset(tenant, cases=2)
    opted_in(tenant, dataset)
    make_dataset(tenant, cases=1)  # not opted in

    night = timezone.now().replace(hour=3)
    with tenant_context(tenant.tenant), override_settings(EVALS_NIGHTLY_HOUR=2):
        nightly.tick_schema(night.replace(hour=1))
        before_the_hour = Experiment.objects.count()
        nightly.tick_schema(night)
        nightly.tick_schema(night + timedelta(minutes=15))
        started = list(Experiment.objects.values_list("version__dataset_id", "schedule", "target__model"))

    assert before_the_hour == 0
    assert started == [(dataset.pk, "nightly", "sim-small")]


def test_opting_in_through_the_api_bills_the_callers_key(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant)

    response = api_client.patch(
        f"/api/v1/datasets/{dataset.pk}", {"nightly_model": "sim-small"}, format="json"
    )
    private = api_client.patch(
        f"/api/v1/datasets/{dataset.pk}", {"alert_webhook_url": "http://127.0.0.1:9/hook"}, format="json"
    )

    assert response.status_code == 200, response.content
    with tenant_context(tenant.tenant):
        assert (
            Dataset.objects.get(pk=dataset.pk).nightly_api_key_id == tenant.provisioned.issued_key.api_key.pk
        )
    assert (private.status_code, private.json()["error"]["param"]) == (400, "alert_webhook_url")


def test_the_beat_task_checks_every_tenant(
    tenant: TenantFixture, other_tenant: TenantFixture, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    for each in (tenant, other_tenant):
        dataset = make_dataset(each, cases=2)
        opted_in(each, dataset, alert_webhook_url=url)
        nightly_pair(each, dataset, {"case-1": False, "case-2": True})

    with override_settings(EVALS_NIGHTLY_HOUR=24):  # checks only: nothing starts
        nightly_tick()

    assert sorted(alert["report"]["regressed_cases"][0] for alert in received) == ["case-1", "case-1"]
    assert len({alert["report"]["experiment"] for alert in received}) == 2
