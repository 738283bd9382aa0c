"""GET /v1/models through the anthropic SDK's `models.list()` and `models.retrieve()`:
answered in Anthropic's shape when `anthropic-version` is sent, in OpenAI's
otherwise, over real servers."""

from __future__ import annotations

import datetime

import anthropic
import httpx
import pytest

from gateway.tests.keys import small_only_key
from testing.tenants import TenantFixture

CATALOG = ["auto", "local-embed", "sim-small", "sim-medium", "sim-large"]
CREATED_AT = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)


def sdk(platform_url: str, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=platform_url, api_key=key, max_retries=0, timeout=20)


def models(gateway: str, key: str, **params: str) -> httpx.Response:
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return httpx.get(f"{gateway}/models", params=params, headers=headers, timeout=20)


def test_the_sdk_lists_the_keys_models_as_model_infos(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    listed = list(sdk(platform_url, tenant.admin_key).models.list())

    assert [model.id for model in listed] == CATALOG
    assert {(model.type, model.created_at) for model in listed} == {("model", CREATED_AT)}
    assert [model.display_name for model in listed] == CATALOG
    assert listed[2].max_input_tokens == 4096


def test_the_sdk_pages_through_the_list(gateway: str, platform_url: str, tenant: TenantFixture) -> None:
    client = sdk(platform_url, tenant.admin_key)

    first = client.models.list(limit=2)
    everything = [model.id for model in client.models.list(limit=2)]

    assert [model.id for model in first.data] == CATALOG[:2]
    assert (first.has_more, first.first_id, first.last_id) == (True, "auto", "local-embed")
    assert everything == CATALOG
    before = client.models.list(limit=2, before_id="sim-medium")
    assert ([model.id for model in before.data], before.has_more) == (CATALOG[1:3], True)


def test_the_sdk_retrieves_a_model_and_gets_not_found_for_others(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    client = sdk(platform_url, tenant.admin_key)

    model = client.models.retrieve("sim-medium")
    routed = client.models.retrieve("auto")
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.models.retrieve("claude-nope")

    assert (model.id, model.type, model.display_name, model.created_at) == (
        "sim-medium",
        "model",
        "sim-medium",
        CREATED_AT,
    )
    assert (routed.id, routed.type) == ("auto", "model")
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_a_key_sees_only_its_allowed_models(
    gateway: str, platform_url: str, serving_tenant: TenantFixture
) -> None:
    key = small_only_key(serving_tenant).secret
    client = sdk(platform_url, key)

    assert [model.id for model in client.models.list()] == ["auto", "sim-small"]
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("sim-large")


def test_bad_paging_and_a_bad_key_are_anthropic_errors(gateway: str, tenant: TenantFixture) -> None:
    too_many = models(gateway, tenant.admin_key, limit="1001")
    unknown_cursor = models(gateway, tenant.admin_key, after_id="gpt-nope")
    bad_key = models(gateway, "aiaas_nope")

    assert too_many.status_code == 400
    assert too_many.json()["error"]["type"] == "invalid_request_error"
    assert too_many.json()["error"]["message"].startswith("limit: ")
    assert unknown_cursor.status_code == 400
    assert unknown_cursor.json()["error"]["message"].startswith("after_id: ")
    assert bad_key.status_code == 401
    assert bad_key.json()["type"] == "error"
    assert bad_key.json()["error"]["type"] == "authentication_error"


def test_without_anthropic_version_the_list_is_openais(gateway: str, tenant: TenantFixture) -> None:
    response = httpx.get(
        f"{gateway}/models", headers={"authorization": f"Bearer {tenant.admin_key}"}, timeout=20
    )

    assert response.status_code == 200
    assert response.json()["object"] == "list"
    assert [model["object"] for model in response.json()["data"]] == ["model"] * len(CATALOG)
    assert "has_more" not in response.json()
