"""A feature a tenant has off: its APIs answer 403 `feature_disabled`, its dashboard
pages 404 "not enabled for this workspace" and leave the nav; other tenants keep it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from flags.services import set_tenant_override
from testing.tenants import TenantFixture

API = [
    ("agents", "get", "/api/v1/agents"),
    ("agents", "get", "/api/v1/runs"),
    ("ingestion", "get", "/api/v1/collections"),
    ("ingestion", "get", "/api/v1/documents/doc_unknown"),
    ("ingestion", "post", "/api/v1/collections/col_unknown/search"),
    ("ingestion", "get", "/v1/files"),
    ("ingestion", "get", "/v1/vector_stores"),
    ("ingestion", "get", "/v1/vector_stores/vs_unknown/files"),
    ("evals", "get", "/api/v1/datasets"),
    ("evals", "get", "/api/v1/experiments"),
    ("batches", "get", "/v1/batches"),
]
PAGES = [
    ("playground", "/dashboard/playground/"),
    ("agents", "/dashboard/agents/"),
    ("ingestion", "/dashboard/knowledge/"),
    ("evals", "/dashboard/evals/"),
]


@pytest.fixture
def turn_off(
    tenant: TenantFixture, django_capture_on_commit_callbacks: Callable[..., Any]
) -> Callable[[str], None]:
    def off(key: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            set_tenant_override(key, tenant.tenant, False, actor="test")

    return off


def call(client: APIClient, method: str, path: str) -> Any:
    return getattr(client, method)(path, {"query": "x"} if method == "post" else None, format="json")


@pytest.mark.parametrize(("key", "method", "path"), API)
def test_an_api_of_a_feature_turned_off_answers_403_feature_disabled(
    key: str,
    method: str,
    path: str,
    api_client: APIClient,
    outsider_client: APIClient,
    turn_off: Callable[[str], None],
) -> None:
    assert call(api_client, method, path).status_code != 403

    turn_off(key)
    refused = call(api_client, method, path)
    outsider = call(outsider_client, method, path)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "feature_disabled"
    assert key in refused.json()["error"]["message"]
    assert outsider.status_code != 403


@pytest.mark.parametrize(("key", "path"), PAGES)
def test_a_dashboard_page_of_a_feature_turned_off_says_so_and_leaves_the_nav(
    key: str, path: str, tenant: TenantFixture, other_tenant: TenantFixture, turn_off: Callable[[str], None]
) -> None:
    browser = tenant.web_client()
    assert browser.get(path).status_code == 200
    assert f'href="{path}"' in browser.get("/dashboard/").content.decode()

    turn_off(key)
    page = browser.get(path)

    assert page.status_code == 404
    assert "Not enabled for this workspace" in page.content.decode()
    assert f'href="{path}"' not in browser.get("/dashboard/").content.decode()
    assert other_tenant.web_client().get(path).status_code == 200


def test_a_page_of_a_feature_turned_off_still_sends_strangers_to_sign_in(
    tenant: TenantFixture, turn_off: Callable[[str], None]
) -> None:
    turn_off("agents")

    response = tenant.web_client(logged_in=False).get("/dashboard/agents/runs/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
