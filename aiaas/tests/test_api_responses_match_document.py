"""Real answers of every /api GET match the committed OpenAPI document: the
document is what clients generate their types from (a `null` where it promises
a string breaks them)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db.models import Model
from rest_framework.test import APIClient

from agents.tests.factories import make_agent, make_prompt, make_run
from evals.tests.factories import make_dataset, make_experiment
from ingestion.tests.factories import make_document, make_stored_collection
from request_logs.tests.factories import make_request_log
from testing.openapi import document, response_validator
from testing.tenants import TenantFixture

# Each GET of the document, with what makes the object its `{id}` names.
GETS: dict[str, Callable[[TenantFixture], Model] | None] = {
    "/api/v1/agents/": None,
    "/api/v1/analytics/summary/": None,
    "/api/v1/analytics/timeseries/": None,
    "/api/v1/agents/{id}/": make_agent,
    "/api/v1/billing/preview/": None,
    "/api/v1/collections/": None,
    "/api/v1/collections/{id}/": make_stored_collection,
    "/api/v1/collections/{id}/documents/": lambda tenant: make_document(tenant).collection,
    "/api/v1/datasets/": None,
    "/api/v1/datasets/golden/": None,
    "/api/v1/datasets/{id}/": make_dataset,
    "/api/v1/datasets/{id}/cases/": make_dataset,
    "/api/v1/datasets/{id}/cases/{key}/": make_dataset,
    "/api/v1/datasets/{id}/export/": make_dataset,
    "/api/v1/datasets/{id}/versions/": make_dataset,
    "/api/v1/documents/": None,
    "/api/v1/documents/{id}/": make_document,
    "/api/v1/experiments/": None,
    "/api/v1/experiments/{id}/": make_experiment,
    "/api/v1/experiments/{id}/agreement/": make_experiment,
    "/api/v1/experiments/{id}/compare/": make_experiment,
    "/api/v1/experiments/{id}/results/": make_experiment,
    "/api/v1/flags/": None,
    "/api/v1/keys/": None,
    "/api/v1/keys/{id}/": lambda tenant: tenant.provisioned.issued_key.api_key,
    "/api/v1/prompts/": None,
    "/api/v1/prompts/{id}/": make_prompt,
    "/api/v1/request-logs/": None,
    "/api/v1/request-logs/{id}/": make_request_log,
    "/api/v1/routing/report/": None,
    "/api/v1/routing/settings/": None,
    "/api/v1/tenant/settings/": None,
    "/api/v1/runs/": None,
    "/api/v1/runs/{id}/": make_run,
    "/api/v1/runs/{id}/events/": make_run,
    "/api/v1/usage/": None,
}

# Required query parameters of a GET, formatted like its path.
QUERIES = {"/api/v1/experiments/{id}/compare/": "?baseline={id}"}


def test_every_api_get_of_the_document_is_checked() -> None:
    documented = {
        path for path, item in document()["paths"].items() if path.startswith("/api/") and "get" in item
    }

    assert documented == set(GETS)


@pytest.mark.parametrize("path", sorted(GETS))
def test_the_answer_matches_the_document(path: str, tenant: TenantFixture, api_client: APIClient) -> None:
    make_object = GETS[path]
    # Lists hold at least one object of each kind.
    make_run(tenant)
    make_prompt(tenant)
    make_request_log(tenant)
    make_document(tenant)
    make_experiment(tenant)
    # `{key}` is a dataset's case (evals/tests/factories.py makes case-1).
    object_id = make_object(tenant).pk if make_object else None
    url = (path + QUERIES.get(path, "")).format(id=object_id, key="case-1")

    response = api_client.get(url)

    assert response.status_code == 200, response.content
    content = document()["paths"][path]["get"]["responses"]["200"]["content"]
    if "application/json" not in content:  # a file (a dataset's export): its documented type
        assert response["Content-Type"].split(";")[0] in content
        return
    errors = [
        f"{error.instance_path}: {error.message}"
        for error in response_validator(path, "get").iter_errors(response.json())
    ]
    assert errors == [], response.content
