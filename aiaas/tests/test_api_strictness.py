"""/api refuses what it would otherwise ignore (fields it does not accept) and
answers every URL it does not serve in its own JSON error shape, DEBUG or not."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from agents.tests.factories import make_agent, simple_spec
from routing.router.services import tenant_routing
from tenants.models import ApiKey
from testing.tenants import TenantFixture


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response.headers["Content-Type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    return error


def test_it_refuses_a_key_with_an_unknown_field_and_creates_none(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    keys_before = ApiKey.objects.filter(tenant=tenant.tenant).count()

    response = api_client.post("/api/v1/keys", {"name": "ci", "rpm_limit": 5}, format="json")

    error = error_of(response, 400)
    assert error["code"] == "unknown_field"
    assert error["param"] == "rpm_limit"
    assert error["message"].startswith("rpm_limit: Unknown field; this body accepts: allowed_models, ")
    assert "requests_per_minute" in error["message"]
    assert ApiKey.objects.filter(tenant=tenant.tenant).count() == keys_before


def test_it_names_every_unknown_field(api_client: APIClient) -> None:
    response = api_client.post("/api/v1/keys", {"name": "ci", "rpm": 5, "tpm": 9}, format="json")

    error = error_of(response, 400)
    assert error["param"] == "rpm"
    assert error["message"].startswith("rpm: Unknown field (and tpm); ")


def test_it_refuses_an_unknown_field_on_a_key_update_and_changes_nothing(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    key = tenant.provisioned.issued_key.api_key

    response = api_client.patch(f"/api/v1/keys/{key.pk}", {"name": "x", "rpm_limit": 5}, format="json")

    assert error_of(response, 400)["param"] == "rpm_limit"
    key.refresh_from_db()
    assert key.name != "x"


def test_it_refuses_a_read_only_routing_setting_and_changes_nothing(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    before = tenant_routing(tenant.tenant.pk).quality_target

    response = api_client.patch(
        "/api/v1/routing/settings", {"quality_target": "0.81", "canary_share": "0.50"}, format="json"
    )

    error = error_of(response, 400)
    assert (error["code"], error["param"]) == ("read_only_field", "canary_share")
    assert error["message"] == (
        "canary_share: Read-only field; this body accepts: exploration_rate, quality_target."
    )
    assert tenant_routing(tenant.tenant.pk).quality_target == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/agents", {"spec": simple_spec("strict"), "name": "strict"}),
        ("/api/v1/prompts", {"name": "greeting", "template": "Hi", "version": 3}),
    ],
)
def test_it_refuses_unknown_fields_on_agents_and_prompts(
    api_client: APIClient, path: str, body: dict[str, Any]
) -> None:
    response = api_client.post(path, body, format="json")

    error = error_of(response, 400)
    assert error["param"] in {"name", "version"}
    assert error["code"] in {"unknown_field", "read_only_field"}


def test_it_refuses_an_unknown_field_when_starting_a_run(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    agent = make_agent(tenant)

    response = api_client.post(f"/api/v1/agents/{agent.pk}/runs", {"inputs": {"text": "hi"}}, format="json")

    assert error_of(response, 400)["param"] == "inputs"


def test_unknown_query_parameters_are_ignored(api_client: APIClient) -> None:
    assert api_client.get("/api/v1/usage?group_by=day&utm_source=x").status_code == 200


# Unknown URLs, malformed ids, methods


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here/", "/api/v1/agents/abc/", "/api/v1/keys/12x", "/api/", "/api/v2/keys"]
)
def test_an_unknown_url_or_a_malformed_id_is_a_json_404(
    api_client: APIClient, path: str, debug: bool
) -> None:
    with override_settings(DEBUG=debug):
        for method in ("get", "post", "delete"):
            response = getattr(api_client, method)(path, {}, format="json")

            error = error_of(response, 404)
            assert error == {
                "message": f"Unknown URL: {method.upper()} {path}",
                "type": "invalid_request_error",
                "code": "unknown_url",
                "param": None,
            }


@override_settings(DEBUG=True)
def test_an_unknown_url_is_a_json_404_without_a_key() -> None:
    response = APIClient().get("/api/v1/agents/abc/")

    assert error_of(response, 404)["code"] == "unknown_url"


@override_settings(DEBUG=True)
def test_a_well_formed_id_of_nothing_is_a_json_404(api_client: APIClient) -> None:
    for path in ("/api/v1/agents/987654321/", "/api/v1/keys/99999999999999999999999"):
        assert error_of(api_client.get(path), 404)["code"] == "not_found"


@pytest.mark.parametrize("debug", [False, True])
def test_a_method_not_served_is_a_json_405(api_client: APIClient, tenant: TenantFixture, debug: bool) -> None:
    agent = make_agent(tenant)
    with override_settings(DEBUG=debug):
        for method, path in [
            ("put", "/api/v1/keys"),
            ("delete", "/api/v1/routing/settings"),
            ("patch", f"/api/v1/agents/{agent.pk}/"),
        ]:
            response = getattr(api_client, method)(path, {}, format="json")

            assert error_of(response, 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "path", ["/api/v1/keys", "/api/v1/agents", "/api/v1/collections", "/v1/vector_stores", "/v1/batches"]
)
def test_a_body_nested_past_the_parsers_depth_is_a_400(
    platform_url: str, serving_tenant: TenantFixture, path: str
) -> None:
    headers = {
        "Host": "localhost",
        "Authorization": f"Bearer {serving_tenant.admin_key}",
        "Content-Type": "application/json",
    }

    response = httpx.post(f"{platform_url}{path}", content=b"[" * 50_000 + b"]" * 50_000, headers=headers)

    error = error_of(response, 400)
    assert error["code"] == "parse_error", error
    assert error["message"].startswith("JSON parse error - "), error


DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    "body",
    ['{"name": ' + DEEP + "}", '{"name": "a\\ud800"}', '{"name": 1e400}'],
    ids=["nested-too-deeply", "lone-surrogate", "infinite-number"],
)
@pytest.mark.parametrize(
    "path",
    ["/api/v1/keys", "/api/v1/tenant/settings", "/v1/vector_stores", "/v1/batches", "/api/v1/agents"],
)
def test_a_body_the_gateway_would_refuse_as_json_is_a_400(
    api_client: APIClient, path: str, body: str
) -> None:
    response = api_client.generic("PATCH" if "settings" in path else "POST", path, body, "application/json")

    error = error_of(response, 400)
    assert error["code"] == "parse_error"
    assert error["message"].startswith("JSON parse error - ")


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/v1/collections?after=a%00", "after"),
        ("/api/v1/experiments?after=%00", "after"),
        ("/v1/files?purpose=%00", "purpose"),
        ("/v1/batches?before=%00", "before"),
        ("/v1/vector_stores?after=x%00y", "after"),
        ("/api/v1/keys?limit=1&%00=1", "\x00"),
    ],
)
def test_a_query_parameter_holding_nul_is_a_400(api_client: APIClient, path: str, param: str) -> None:
    error = error_of(api_client.get(path), 400)

    assert error["code"] == "null_characters_not_allowed"
    assert error["param"] == param
