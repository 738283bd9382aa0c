"""The shipped golden suites: readable, 10-25 cases each with JSON assertions, and
copied into a tenant's schema on first use."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, cast

import pytest
from rest_framework.test import APIClient

from evals import golden
from evals.datasets import CaseData
from evals.scorers import JudgeContext, Observation, build
from evals.tests.golden_answers import right_answer

NO_CALLS = JudgeContext(gateway=cast(Any, None), api_key=cast(Any, None), request_id_prefix="req_test")

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


@pytest.mark.parametrize("name", SUITES)
def test_a_right_answer_passes_every_assertion_and_a_wrong_one_fails(name: str) -> None:
    suite = golden.suite(name)
    for case in suite.cases():
        scorers = build([*suite.assertions, *case.assertions])
        right = [asyncio.run(s.score(observe(case, right_answer(suite, case)), NO_CALLS)) for s in scorers]
        wrong = [asyncio.run(s.score(observe(case, '{"answer": "no idea"}'), NO_CALLS)) for s in scorers]

        assert all(score.passed for score in right), (case.key, [s.reason for s in right if not s.passed])
        assert not all(score.passed for score in wrong), case.key


def observe(case: CaseData, output: str) -> Observation:
    return Observation(case.key, case.input, case.expected, output, latency_ms=10, cost_usd=Decimal(0))
