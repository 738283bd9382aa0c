"""The dashboard playground: the page, its tokens, and a chat through them."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import orjson
import pytest
from websockets.exceptions import InvalidStatus

from accounts.tests.factories import browser_for, make_user
from realtime.tests.clients import chat_body, expected_answer, open_socket, read_all, ws_url
from routing.models import Provider, ProviderModel
from testing.tenants import TenantFixture


def test_the_page_offers_the_tenants_inference_keys(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    response = tenant.web_client().get("/dashboard/playground/")

    assert response.status_code == 200
    assert [key.pk for key in response.context["keys"]] == [tenant.provisioned.issued_key.api_key.pk]
    assert b"/ws/v1/chat/completions" in response.content


def test_a_token_is_minted_for_the_tenants_own_keys_only(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    client = tenant.web_client()

    refused = client.post(
        "/dashboard/playground/token/", {"key": other_tenant.provisioned.issued_key.api_key.pk}
    )
    minted = client.post("/dashboard/playground/token/", {"key": tenant.provisioned.issued_key.api_key.pk})

    assert refused.status_code == 400
    assert minted.status_code == 200
    assert minted.json()["purpose"] == "chat.completions"
    assert minted.json()["origin"] == f"http://{tenant.host}"


def test_a_dashboard_token_streams_a_chat_from_its_origin_only(gateway: str, tenant: TenantFixture) -> None:
    client = tenant.web_client()
    key = tenant.provisioned.issued_key.api_key.pk
    url = ws_url(gateway, "/ws/v1/chat/completions")

    async def chat(token: str, origin: str) -> list[dict[str, Any]]:
        async with open_socket(f"{url}?token={token}", origin=origin) as connection:
            await connection.send(orjson.dumps(chat_body("Play.")).decode())
            return await read_all(connection)

    token = client.post("/dashboard/playground/token/", {"key": key}).json()["token"]
    messages = asyncio.run(asyncio.wait_for(chat(token, f"http://{tenant.host}"), 30))
    assert messages[-1]["type"] == "done"
    assert messages[-1]["content"] == expected_answer("Play.")

    token = client.post("/dashboard/playground/token/", {"key": key}).json()["token"]
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(chat(token, "http://evil.example"))
    assert refused.value.response.status_code == 401


def test_a_logged_out_visitor_is_sent_to_login(tenant: TenantFixture) -> None:
    response = tenant.web_client(logged_in=False).post("/dashboard/playground/token/", {"key": 1})

    assert response.status_code == 302
    assert response.headers["location"].startswith("/login/")


def test_a_member_who_cannot_manage_keys_is_refused(tenant: TenantFixture) -> None:
    browser = browser_for(tenant, make_user(tenant, email="player@alpha.example"))
    key = tenant.provisioned.issued_key.api_key.pk

    assert browser.get("/dashboard/playground/").status_code == 403
    assert browser.post("/dashboard/playground/token/", {"key": key}).status_code == 403


def test_the_page_has_every_control_labelled(tenant: TenantFixture) -> None:
    content = tenant.web_client().get("/dashboard/playground/").content.decode()

    for control in ("key", "model", "compare", "temperature", "max-tokens", "system", "prompt"):
        assert f'<label class="field-label" for="playground-{control}">' in content, control
        assert f'id="playground-{control}"' in content, control
    for button in ("send", "cancel", "clear", "copy-curl", "copy-python"):
        assert f'id="playground-{button}"' in content, button
    assert 'data-api-base="http://alpha.localhost/v1"' in content
    assert '<option value="sim-large">sim-large (tier 3)</option>' in content


def test_a_banner_says_so_while_only_the_simulated_provider_is_configured(tenant: TenantFixture) -> None:
    client = tenant.web_client()
    assert all(
        provider.is_simulated
        for provider in Provider.objects.filter(is_enabled=True, models__supports_chat=True)
    )

    simulated_only = client.get("/dashboard/playground/").content.decode()
    real = Provider.objects.create(slug="real-llm", name="A real provider", base_url="https://llm.example/v1")
    ProviderModel.objects.create(
        model_id="real-model",
        provider=real,
        upstream_model="real-model",
        tier=2,
        context_window=8_192,
        input_price_per_million=Decimal("1"),
        output_price_per_million=Decimal("2"),
    )
    with_a_real_one = client.get("/dashboard/playground/").content.decode()

    assert 'id="playground-simulated"' in simulated_only
    assert "Only the simulated provider is configured" in simulated_only
    assert 'id="playground-simulated"' not in with_a_real_one
    assert '<option value="real-model">real-model (tier 2)</option>' in with_a_real_one
