"""GET /api/v1/flags: the calling tenant's flags as its requests get them, in the
documented shape; another tenant's key sees its own, never the caller's overrides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.test import APIClient

from flags.services import save_flag, set_tenant_override
from testing.openapi import response_validator
from testing.tenants import TenantFixture

URL = "/api/v1/flags"
SEEDED = ("agents", "batches", "evals", "ingestion", "playground")


def flags_of(client: APIClient) -> dict[str, tuple[bool, str]]:
    response = client.get(URL)
    assert response.status_code == 200, response.content
    body = response.json()
    assert [error.message for error in response_validator(f"{URL}/", "get").iter_errors(body)] == []
    assert body["object"] == "list"
    assert {flag["object"] for flag in body["data"]} == {"feature_flag"}
    return {flag["key"]: (flag["enabled"], flag["rule"]) for flag in body["data"]}


def test_a_tenant_reads_its_evaluated_flags(api_client: APIClient) -> None:
    assert flags_of(api_client) == {key: (True, "default") for key in SEEDED}


def test_another_tenants_key_sees_its_own_flags_not_the_callers_overrides(
    tenant: TenantFixture,
    api_client: APIClient,
    outsider_client: APIClient,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        save_flag("gradual", enabled_by_default=False, rollout_percentage=0, actor="test")
        set_tenant_override("agents", tenant.tenant, False, actor="test")
        set_tenant_override("gradual", tenant.tenant, True, actor="test")

    own = flags_of(api_client)
    outsider = flags_of(outsider_client)

    assert own["agents"] == (False, "tenant_override")
    assert own["gradual"] == (True, "tenant_override")
    assert outsider["agents"] == (True, "default")
    assert outsider["gradual"] == (False, "rollout")


def test_flags_need_an_api_key(db: None) -> None:
    response = APIClient().get(URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
