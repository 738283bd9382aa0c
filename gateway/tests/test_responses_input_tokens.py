"""POST /v1/responses/input_tokens through the official openai SDK and raw HTTP, over
the real server: the gateway's estimate of a create request's input (its stored
conversation included), checked as create checks it, calling no model, billing nothing."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from billing.models import UsageEvent
from gateway.tests.keys import read_only_key, small_only_key
from gateway.tests.test_responses_api import PROMPT, WEATHER, sdk
from testing.tenants import TenantFixture


def estimate(text: str, messages: int) -> int:
    """The documented estimate: about 4 characters a token, plus 4 a message (docs/compatibility.md)."""
    return len(text) // 4 + 1 + 4 * messages


def count(gateway: str, body: object, key: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{gateway}/responses/input_tokens", json=body, headers=headers, timeout=20)


def test_the_sdk_counts_input_instructions_tools_and_the_stored_conversation(
    gateway: str, tenant: TenantFixture
) -> None:
    client = sdk(gateway, tenant.admin_key)
    first = client.responses.create(model="sim-small", input="Hello.")

    plain = client.responses.input_tokens.count(model="sim-small", input=PROMPT)
    instructed = client.responses.input_tokens.count(input=PROMPT, instructions="Be brief.")  # model: auto
    continued = client.responses.input_tokens.count(
        model="sim-small", input=PROMPT, previous_response_id=first.id
    )
    with_tools = client.responses.input_tokens.count(model="sim-small", input=PROMPT, tools=[WEATHER])

    assert (plain.object, plain.input_tokens) == ("response.input_tokens", estimate(PROMPT, 1))
    assert instructed.input_tokens == estimate(f"Be brief.\n{PROMPT}", 2)
    assert continued.input_tokens == estimate(f"Hello.\n{first.output_text}\n{PROMPT}", 3)
    assert with_tools.input_tokens > plain.input_tokens + len(json.dumps(WEATHER["parameters"])) // 4


def test_counting_calls_no_model_and_bills_nothing(gateway: str, serving_tenant: TenantFixture) -> None:
    before = UsageEvent.objects.filter(tenant=serving_tenant.tenant).count()

    response = count(gateway, {"model": "sim-large", "input": PROMPT}, serving_tenant.admin_key)

    assert response.status_code == 200, response.text
    assert response.json() == {"object": "response.input_tokens", "input_tokens": estimate(PROMPT, 1)}
    assert "x-aiaas-model" not in response.headers
    assert UsageEvent.objects.filter(tenant=serving_tenant.tenant).count() == before


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "sim-small", "input": PROMPT, "max_output_tokens": 8}, 400, "max_output_tokens"),
        ({"model": "sim-small", "input": PROMPT, "stream": True}, 400, "stream"),
        ({"model": "sim-small", "input": PROMPT, "truncation": "auto"}, 400, "truncation"),
        ({"model": "sim-small"}, 400, "input"),
        (
            {"model": "sim-small", "input": PROMPT, "previous_response_id": "resp_nope"},
            400,
            "previous_response_id",
        ),
        ({"model": "gpt-nope", "input": PROMPT}, 404, "model"),
    ],
    ids=["max_output_tokens", "stream", "truncation", "no-input", "unknown-previous", "unknown-model"],
)
def test_a_request_create_would_refuse_is_refused_naming_the_field(
    gateway: str, tenant: TenantFixture, body: object, status: int, param: str
) -> None:
    response = count(gateway, body, tenant.admin_key)

    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_keys_and_tenants_are_checked_as_for_create(
    gateway: str, serving_tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    small_only = small_only_key(serving_tenant)
    read_only = read_only_key(serving_tenant)
    stored = sdk(gateway, serving_tenant.admin_key).responses.create(model="sim-small", input="Hello.")

    with pytest.raises(openai.PermissionDeniedError):
        sdk(gateway, small_only.secret).responses.input_tokens.count(model="sim-large", input=PROMPT)
    with pytest.raises(openai.PermissionDeniedError):
        sdk(gateway, read_only.secret).responses.input_tokens.count(model="sim-small", input=PROMPT)
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "aiaas_nope_nope").responses.input_tokens.count(model="sim-small", input=PROMPT)
    # Another tenant's key cannot count this one's stored conversation.
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(gateway, other_tenant.admin_key).responses.input_tokens.count(
            model="sim-small", input=PROMPT, previous_response_id=stored.id
        )
    assert raised.value.code == "previous_response_not_found"
