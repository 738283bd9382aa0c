"""CORS on /api (Django) and /v1 (the gateway): off by default; a preflight is
answered for an origin some tenant allows, without a key; an answer names the
origin only when the key's tenant allows it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_django import DjangoDbBlocker
from rest_framework.test import APIClient

from tenants.cors import known_origins
from tenants.models import ApiKeyScope, Tenant
from tenants.services import create_api_key, set_cors_allowed_origins
from testing.database import committed
from testing.tenants import TenantFixture

APP = "https://app.example.com"
ELSEWHERE = "https://evil.example.net"


@pytest.fixture(autouse=True)
def _no_cached_origins() -> Iterator[None]:
    """Each test reads the origins its own tenants allow, not an earlier test's."""
    known_origins.forget()
    yield
    known_origins.forget()


def preflight(client: APIClient, path: str, origin: str, method: str = "POST") -> Any:
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="Authorization, Content-Type, X-Stainless-OS",
    )


def allow_app(client: APIClient) -> Any:
    response = client.patch(
        "/api/v1/tenant/settings", {"cors_allowed_origins": ["https://App.Example.COM", APP]}, format="json"
    )
    assert response.status_code == 200, response.content
    return response


# /api


def test_cors_is_off_by_default(api_client: APIClient, tenant: TenantFixture) -> None:
    assert Tenant.objects.get(pk=tenant.tenant.pk).cors_allowed_origins == []

    refused = preflight(APIClient(), "/api/v1/keys", APP)
    answered = api_client.get("/api/v1/keys", HTTP_ORIGIN=APP)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused
    assert answered.status_code == 200
    assert "Access-Control-Allow-Origin" not in answered
    assert "Origin" in answered["Vary"]


def test_the_tenant_settings_store_origins_lowercased_once(api_client: APIClient) -> None:
    response = allow_app(api_client)

    assert response.json()["cors_allowed_origins"] == [APP]
    assert api_client.get("/api/v1/tenant/settings").json()["cors_allowed_origins"] == [APP]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"cors_allowed_origins": ["app.example.com"]}, "cors_allowed_origins[0]"),
        ({"cors_allowed_origins": ["https://app.example.com/path"]}, "cors_allowed_origins[0]"),
        ({"cors_allowed_origins": "https://app.example.com"}, "cors_allowed_origins"),
        ({"cors_allowed_origins": [f"https://{n}.example.com" for n in range(21)]}, "cors_allowed_origins"),
        ({"cors_origins": [APP]}, "cors_origins"),
        ({"updated_at": "2026-01-01T00:00:00Z"}, "updated_at"),
    ],
)
def test_the_tenant_settings_refuse_what_is_not_an_origin_list(
    api_client: APIClient, tenant: TenantFixture, body: dict[str, Any], param: str
) -> None:
    response = api_client.patch("/api/v1/tenant/settings", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param
    assert Tenant.objects.get(pk=tenant.tenant.pk).cors_allowed_origins == []


def test_a_preflight_for_an_allowed_origin_is_answered_without_a_key(api_client: APIClient) -> None:
    allow_app(api_client)

    response = preflight(APIClient(), "/api/v1/keys", APP, "PATCH")

    assert response.status_code == 204, response.content
    assert response["Access-Control-Allow-Origin"] == APP
    assert response["Access-Control-Allow-Methods"] == "GET, POST, PUT, PATCH, DELETE"
    assert response["Access-Control-Allow-Headers"] == "authorization, content-type, x-stainless-os"
    assert response["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in response
    assert preflight(APIClient(), "/api/v1/keys", ELSEWHERE).status_code == 403
    assert preflight(APIClient(), "/api/v1/keys", APP, "TRACE").status_code == 403


def test_the_answer_names_the_origin_only_for_the_keys_tenant(
    api_client: APIClient, outsider_client: APIClient
) -> None:
    allow_app(api_client)

    own = api_client.get("/api/v1/keys", HTTP_ORIGIN=APP)
    other_origin = api_client.get("/api/v1/keys", HTTP_ORIGIN=ELSEWHERE)
    other_tenant = outsider_client.get("/api/v1/keys", HTTP_ORIGIN=APP)
    no_key = APIClient().get("/api/v1/keys", HTTP_ORIGIN=APP)

    assert own.status_code == 200
    assert own["Access-Control-Allow-Origin"] == APP
    assert "x-request-id" in own["Access-Control-Expose-Headers"]
    for response in (other_origin, other_tenant, no_key):
        assert "Access-Control-Allow-Origin" not in response
    assert no_key.status_code == 401


def test_another_tenants_settings_are_its_own(
    api_client: APIClient, outsider_client: APIClient, tenant: TenantFixture
) -> None:
    response = outsider_client.patch(
        "/api/v1/tenant/settings", {"cors_allowed_origins": [ELSEWHERE]}, format="json"
    )

    assert response.json()["cors_allowed_origins"] == [ELSEWHERE]
    assert api_client.get("/api/v1/tenant/settings").json()["cors_allowed_origins"] == []
    assert Tenant.objects.get(pk=tenant.tenant.pk).cors_allowed_origins == []


def test_the_tenant_settings_need_an_admin_key(tenant: TenantFixture) -> None:
    read_key = create_api_key(tenant.tenant, name="reader", scopes=[ApiKeyScope.READ]).secret

    response = tenant.api_client(read_key).patch(
        "/api/v1/tenant/settings", {"cors_allowed_origins": [APP]}, format="json"
    )

    assert response.status_code == 403


# /v1, served


@pytest.fixture
def app_allowed(
    gateway: str, serving_tenant: TenantFixture, django_db_blocker: DjangoDbBlocker
) -> Iterator[str]:
    """The serving tenant allows APP; a key made after that (no cached copy of the tenant)."""
    with django_db_blocker.unblock():
        committed(lambda: set_cors_allowed_origins(Tenant.objects.get(pk=serving_tenant.tenant.pk), [APP]))
        key = committed(
            lambda: create_api_key(serving_tenant.tenant, name="cors", scopes=[ApiKeyScope.INFERENCE])
        ).secret
    yield key
    with django_db_blocker.unblock():
        committed(lambda: set_cors_allowed_origins(Tenant.objects.get(pk=serving_tenant.tenant.pk), []))


def v1_preflight(gateway: str, origin: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    return httpx.options(f"{gateway}/chat/completions", headers=headers, timeout=10)


def test_v1_refuses_a_preflight_by_default(gateway: str) -> None:
    response = v1_preflight(gateway, APP)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in response.headers


def test_v1_answers_a_preflight_and_names_the_origin_for_the_keys_tenant(
    gateway: str, app_allowed: str, other_tenant: TenantFixture
) -> None:
    preflight_answer = v1_preflight(gateway, APP)
    own = httpx.get(f"{gateway}/models", headers={"Authorization": f"Bearer {app_allowed}", "Origin": APP})
    other_tenant_key = httpx.get(
        f"{gateway}/models", headers={"Authorization": f"Bearer {other_tenant.admin_key}", "Origin": APP}
    )
    other_origin = httpx.get(
        f"{gateway}/models", headers={"Authorization": f"Bearer {app_allowed}", "Origin": ELSEWHERE}
    )
    no_key = httpx.get(f"{gateway}/models", headers={"Origin": APP})

    assert preflight_answer.status_code == 204
    assert preflight_answer.headers["access-control-allow-origin"] == APP
    assert preflight_answer.headers["access-control-allow-headers"] == "authorization,content-type"
    assert v1_preflight(gateway, ELSEWHERE).status_code == 403
    assert own.status_code == 200
    assert own.headers["access-control-allow-origin"] == APP
    assert own.headers["vary"] == "Origin"
    assert other_tenant_key.status_code == 200
    assert no_key.status_code == 401
    for response in (other_tenant_key, other_origin, no_key):
        assert "access-control-allow-origin" not in response.headers


def test_v1_messages_names_the_origin_for_the_keys_tenant_however_the_key_is_sent(
    gateway: str, app_allowed: str
) -> None:
    """The Anthropic facade reads its key from `x-api-key` as well as Bearer: both are the key's tenant's."""
    body = {"model": "sim-small", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
    for key_header in ({"x-api-key": app_allowed}, {"Authorization": f"Bearer {app_allowed}"}):
        headers = {**key_header, "anthropic-version": "2023-06-01", "Origin": APP}
        response = httpx.post(f"{gateway}/messages", json=body, headers=headers, timeout=20)

        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == APP
