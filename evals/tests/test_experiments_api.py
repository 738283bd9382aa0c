"""/api/v1/experiments: create, read with aggregates, results, labels, cancel, compare
and the gate. Experiments other than the created one are stored as the runner leaves
them (evals/tests/factories.py); running them is test_runner.py's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from evals.models import CaseResult, DatasetVersion, ExperimentStatus, ResultStatus
from evals.tests.factories import make_dataset, make_experiment
from testing.tenants import TenantFixture

# Creating an experiment checks its model in the registry (the simulated provider's).
pytestmark = pytest.mark.usefixtures("registry")


def error_of(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_it_creates_an_experiment_and_locks_its_version(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=3)

    response = api_client.post(
        "/api/v1/experiments",
        {"dataset": dataset.pk, "target_kind": "model", "target": {"model": "sim-small"}, "name": "first"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["object"], body["status"], body["dataset_id"], body["dataset_version"], body["name"]) == (
        "experiment",
        "queued",
        dataset.pk,
        1,
        "first",
    )
    assert body["id"].startswith("exp_")
    with tenant_context(tenant.tenant):
        assert DatasetVersion.objects.get(dataset=dataset, version=1).locked_at is not None


def test_it_refuses_a_bad_target_scorer_or_dataset(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant)
    base = {"dataset": dataset.pk, "target_kind": "model", "target": {"model": "sim-small"}}

    unknown_model = api_client.post(
        "/api/v1/experiments", {**base, "target": {"model": "no-such-model"}}, format="json"
    )
    bad_scorer = api_client.post(
        "/api/v1/experiments", {**base, "scorers": [{"type": "telepathy"}]}, format="json"
    )
    no_dataset = api_client.post("/api/v1/experiments", {**base, "dataset": 987654321}, format="json")

    assert unknown_model.status_code == 400, unknown_model.content
    assert (bad_scorer.status_code, error_of(bad_scorer)["param"]) == (400, "scorers")
    assert (no_dataset.status_code, error_of(no_dataset)["param"]) == (400, "dataset")


def test_it_reads_an_experiment_with_its_aggregates(tenant: TenantFixture, api_client: APIClient) -> None:
    experiment = make_experiment(tenant, verdicts={"case-1": True, "case-2": False})

    response = api_client.get(f"/api/v1/experiments/{experiment.pk}")
    listed = api_client.get("/api/v1/experiments")

    assert response.status_code == 200, response.content
    aggregates = response.json()["aggregates"]
    assert (aggregates["n"], aggregates["passed"], aggregates["pass_rate"], aggregates["cost_usd"]) == (
        2,
        1,
        0.5,
        "0.00200000",
    )
    assert [item["id"] for item in listed.json()["data"]] == [experiment.pk]


def test_results_are_paged_in_case_order_and_filtered(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=3)
    experiment = make_experiment(tenant, dataset, {"case-1": True, "case-2": False, "case-3": True})

    first = api_client.get(f"/api/v1/experiments/{experiment.pk}/results?limit=2")
    rest = api_client.get(f"/api/v1/experiments/{experiment.pk}/results?after=2")
    failed = api_client.get(f"/api/v1/experiments/{experiment.pk}/results?passed=false")

    assert [(r["key"], r["passed"]) for r in first.json()["data"]] == [("case-1", True), ("case-2", False)]
    assert first.json()["has_more"] is True
    assert [r["key"] for r in rest.json()["data"]] == ["case-3"]
    assert [r["key"] for r in failed.json()["data"]] == ["case-2"]


def test_a_person_labels_a_result(tenant: TenantFixture, api_client: APIClient) -> None:
    experiment = make_experiment(tenant)

    labelled = api_client.patch(
        f"/api/v1/experiments/{experiment.pk}/results/case-2", {"human_label": True}, format="json"
    )
    missing = api_client.patch(
        f"/api/v1/experiments/{experiment.pk}/results/case-9", {"human_label": True}, format="json"
    )
    not_bool = api_client.patch(
        f"/api/v1/experiments/{experiment.pk}/results/case-2", {"human_label": "maybe"}, format="json"
    )

    assert (labelled.status_code, labelled.json()["human_label"]) == (200, True)
    assert missing.status_code == 404
    assert not_bool.status_code == 400
    with tenant_context(tenant.tenant):
        assert CaseResult.objects.get(experiment=experiment, case__key="case-2").human_label is True


def test_cancelling_a_queued_experiment_ends_it(tenant: TenantFixture, api_client: APIClient) -> None:
    experiment = make_experiment(tenant, status=ExperimentStatus.QUEUED, verdicts={"case-1": True})

    response = api_client.post(f"/api/v1/experiments/{experiment.pk}/cancel")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["aggregates"]["n"]) == ("cancelled", 1)


def test_compare_lists_regressions_first_with_the_test_and_deltas(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=3)
    baseline = make_experiment(tenant, dataset, {"case-1": True, "case-2": True, "case-3": False})
    candidate = make_experiment(tenant, dataset, {"case-1": True, "case-2": False, "case-3": True})

    response = api_client.get(f"/api/v1/experiments/{candidate.pk}/compare?baseline={baseline.pk}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["regressed"], body["improved"], body["unchanged"], body["pass_rate_delta"]) == (1, 1, 1, 0.0)
    assert [(case["key"], case["change"]) for case in body["cases"]] == [
        ("case-2", "regressed"),
        ("case-3", "improved"),
    ]
    assert body["mcnemar_p"] == 1.0


def test_compare_refuses_another_datasets_experiment(tenant: TenantFixture, api_client: APIClient) -> None:
    one, other = make_experiment(tenant), make_experiment(tenant)

    response = api_client.get(f"/api/v1/experiments/{one.pk}/compare?baseline={other.pk}")
    unknown = api_client.get(f"/api/v1/experiments/{one.pk}/compare?baseline=exp_{'0' * 24}")

    assert (response.status_code, error_of(response)["code"]) == (400, "not_comparable")
    assert (unknown.status_code, error_of(unknown)["param"]) == (400, "baseline")


def test_the_gate_fails_on_a_regression_and_passes_without_one(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=2)
    baseline = make_experiment(tenant, dataset, {"case-1": True, "case-2": True})
    regressed = make_experiment(tenant, dataset, {"case-1": True, "case-2": False})
    same = make_experiment(tenant, dataset, {"case-1": True, "case-2": True})

    failed = api_client.post(
        f"/api/v1/experiments/{regressed.pk}/gate", {"baseline": baseline.pk}, format="json"
    )
    allowed = api_client.post(
        f"/api/v1/experiments/{regressed.pk}/gate",
        {"baseline": baseline.pk, "max_regressions": 1},
        format="json",
    )
    passed = api_client.post(
        f"/api/v1/experiments/{same.pk}/gate", {"baseline": baseline.pk, "min_pass_rate": 0.9}, format="json"
    )

    assert failed.status_code == 200, failed.content
    assert (failed.json()["passed"], failed.json()["regressions"], failed.json()["regressed_cases"]) == (
        False,
        1,
        ["case-2"],
    )
    assert failed.json()["reasons"] == ["1 cases regressed (at most 0 allowed)"]
    assert allowed.json()["passed"] is True
    assert (passed.json()["passed"], passed.json()["pass_rate"], passed.json()["suite"]) == (
        True,
        1.0,
        dataset.name,
    )


def test_the_gate_fails_below_the_pass_rate_and_refuses_a_running_experiment(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    finished = make_experiment(tenant, verdicts={"case-1": True, "case-2": False})
    running = make_experiment(tenant, status=ExperimentStatus.RUNNING)

    low = api_client.post(f"/api/v1/experiments/{finished.pk}/gate", {"min_pass_rate": 0.75}, format="json")
    busy = api_client.post(f"/api/v1/experiments/{running.pk}/gate", {}, format="json")

    assert (low.json()["passed"], low.json()["reasons"]) == (False, ["pass rate 0.5000 is below 0.75"])
    assert (busy.status_code, error_of(busy)["code"]) == (409, "not_finished")


def test_an_experiment_names_its_baseline_for_pairwise_judges(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=2)
    baseline = make_experiment(tenant, dataset)
    body = {"dataset": dataset.pk, "target_kind": "model", "target": {"model": "sim-small"}}

    response = api_client.post("/api/v1/experiments", {**body, "baseline": baseline.pk}, format="json")
    unknown = api_client.post("/api/v1/experiments", {**body, "baseline": f"exp_{'0' * 24}"}, format="json")

    assert (response.status_code, response.json()["baseline_id"]) == (201, baseline.pk)
    assert (unknown.status_code, error_of(unknown)["param"]) == (400, "baseline")


def test_the_judges_agreement_with_human_labels_is_measured(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=4)
    experiment = make_experiment(
        tenant, dataset, {"case-1": True, "case-2": False, "case-3": True, "case-4": False}
    )
    for key, label in [("case-1", True), ("case-2", False), ("case-3", False)]:
        api_client.patch(
            f"/api/v1/experiments/{experiment.pk}/results/{key}", {"human_label": label}, format="json"
        )

    response = api_client.get(f"/api/v1/experiments/{experiment.pk}/agreement")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["n"], body["both_passed"], body["both_failed"], body["judge_passed_person_failed"]) == (
        3,
        1,
        1,
        1,
    )
    assert body["raw_agreement"] == pytest.approx(2 / 3)


def test_deleting_a_dataset_deletes_its_experiments_but_not_while_one_runs(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    finished_dataset, running_dataset = make_dataset(tenant), make_dataset(tenant)
    finished = make_experiment(tenant, finished_dataset)
    make_experiment(tenant, running_dataset, status=ExperimentStatus.RUNNING)

    deleted = api_client.delete(f"/api/v1/datasets/{finished_dataset.pk}")
    refused = api_client.delete(f"/api/v1/datasets/{running_dataset.pk}")

    assert deleted.status_code == 204
    assert api_client.get(f"/api/v1/experiments/{finished.pk}").status_code == 404
    assert (refused.status_code, error_of(refused)["code"]) == (409, "in_use")


def test_experiments_are_listed_by_dataset_and_schedule(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant)
    first = make_experiment(tenant, dataset)
    nightly = make_experiment(tenant, dataset, schedule="nightly")
    make_experiment(tenant)

    of_dataset = api_client.get(f"/api/v1/experiments?dataset={dataset.pk}")
    nightly_only = api_client.get(f"/api/v1/experiments?dataset={dataset.pk}&schedule=nightly")

    assert [e["id"] for e in of_dataset.json()["data"]] == [nightly.pk, first.pk]
    assert [e["id"] for e in nightly_only.json()["data"]] == [nightly.pk]


def test_the_gate_fails_an_experiment_whose_cases_errored(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    """Every call shed or failed left a `succeeded` experiment with nothing answered,
    which a gate without a bar passed: a CI job would have deployed on it."""
    experiment = make_experiment(tenant, verdicts={"case-1": False, "case-2": False})
    with tenant_context(tenant.tenant):
        CaseResult.objects.filter(experiment=experiment).update(
            status=ResultStatus.ERRORED, output=None, cost_usd=Decimal(0)
        )

    report = api_client.post(f"/api/v1/experiments/{experiment.pk}/gate", {}, format="json").json()

    assert (report["passed"], report["errored"]) == (False, 2)
    assert report["reasons"] == ["2 of 2 cases errored (the target gave no answer to score)"]
    assert report["cost_usd"] == "0.00000000"
