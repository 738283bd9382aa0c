"""The shipped golden suites: readable, 10-25 cases each with JSON assertions, and
copied into a tenant's schema on first use."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from evals import golden

SUITES = ["golden-faq", "golden-leads", "golden-orders", "golden-tracking"]


def test_the_four_suites_are_shipped() -> None:
    assert sorted(golden.suites()) == SUITES


@pytest.mark.parametrize("name", SUITES)
def test_each_suite_has_10_to_25_cases_with_json_assertions(name: str) -> None:
    cases = golden.suite(name).cases()

    assert 10 <= len(cases) <= 25
    assert all(case.assertions and case.input["messages"][0]["role"] == "system" for case in cases)
    assert golden.suite(name).assertions[0]["type"] == "json_schema"


def test_a_tenant_copies_a_suite_by_its_name(api_client: APIClient) -> None:
    before = api_client.get("/api/v1/datasets/golden").json()["data"]

    created = api_client.post(
        "/api/v1/datasets", {"name": "golden-orders", "nightly_model": "sim-small"}, format="json"
    )
    again = api_client.post("/api/v1/datasets", {"name": "golden-orders"}, format="json")
    after = api_client.get("/api/v1/datasets/golden").json()["data"]

    assert created.status_code == 201, created.content
    assert (created.json()["case_count"], created.json()["nightly_model"]) == (12, "sim-small")
    assert again.status_code == 409
    assert [suite["dataset_id"] for suite in before] == [None] * 4
    copied = {suite["name"]: suite["dataset_id"] for suite in after}
    assert copied["golden-orders"] == created.json()["id"]
    versions = api_client.get(f"/api/v1/datasets/{created.json()['id']}/versions").json()["data"]
    assert versions[0]["assertions"] == golden.suite("golden-orders").assertions
