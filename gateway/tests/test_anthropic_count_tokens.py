"""POST /v1/messages/count_tokens through the official anthropic SDK and raw HTTP,
over the real server: the gateway's estimate of a Messages request's input,
checked as /v1/messages checks it, calling no model and billing nothing."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, ToolParam

from billing.models import UsageEvent
from gateway.tests.keys import committed_key, read_only_key, small_only_key
from gateway.tests.test_anthropic_messages import MESSAGES, PROMPT, sdk
from tenants.models import ApiKeyScope
from tenants.services import revoke_api_key
from testing.database import committed
from testing.tenants import TenantFixture

SYSTEM = "Answer briefly."
TOOL: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def estimate(text: str, messages: int = 0) -> int:
    """The documented estimate: about 4 characters a token, plus 4 a message (docs/anthropic.md)."""
    return len(text) // 4 + 1 + 4 * messages


def count(gateway: str, body: object, key: str) -> httpx.Response:
    return httpx.post(f"{gateway}/messages/count_tokens", json=body, headers={"x-api-key": key}, timeout=20)


def test_the_sdk_counts_a_conversation_with_its_system_prompt_and_tools(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    client = sdk(platform_url, tenant.admin_key)
    turns: list[MessageParam] = [*MESSAGES, {"role": "assistant", "content": "Isolated."}, *MESSAGES]

    plain = client.messages.count_tokens(model="sim-small", messages=MESSAGES)
    longer = client.messages.count_tokens(model="auto", messages=turns, system=SYSTEM)
    with_tools = client.messages.count_tokens(model="sim-small", messages=MESSAGES, tools=[TOOL])

    assert plain.input_tokens == estimate(PROMPT, 1)
    assert longer.input_tokens == estimate("\n".join([SYSTEM, PROMPT, "Isolated.", PROMPT]), 4)
    # The tools' definitions count, their JSON schemas among them.
    assert with_tools.input_tokens > plain.input_tokens + len(json.dumps(TOOL)) // 4


def test_counting_calls_no_model_and_bills_nothing(gateway: str, serving_tenant: TenantFixture) -> None:
    before = UsageEvent.objects.filter(tenant=serving_tenant.tenant).count()

    response = count(gateway, {"model": "sim-large", "messages": MESSAGES}, serving_tenant.admin_key)

    assert response.status_code == 200, response.text
    assert response.json() == {"input_tokens": estimate(PROMPT, 1)}
    assert response.headers["request-id"] == response.headers["x-request-id"]
    assert "x-aiaas-model" not in response.headers
    assert UsageEvent.objects.filter(tenant=serving_tenant.tenant).count() == before


@pytest.mark.parametrize(
    ("body", "status", "error_type", "message"),
    [
        (
            {"model": "sim-small", "max_tokens": 8, "messages": MESSAGES},
            400,
            "invalid_request_error",
            "max_tokens: Extra inputs are not permitted.",
        ),
        (
            {"model": "sim-small", "stream": True, "messages": MESSAGES},
            400,
            "invalid_request_error",
            "stream: Extra inputs are not permitted.",
        ),
        ({"model": "sim-small"}, 400, "invalid_request_error", "messages: Field required."),
        ({"model": "claude-nope", "messages": MESSAGES}, 404, "not_found_error", None),
    ],
    ids=["max_tokens", "stream", "no-messages", "unknown-model"],
)
def test_a_request_messages_would_refuse_is_refused_in_anthropics_shape(
    gateway: str, tenant: TenantFixture, body: object, status: int, error_type: str, message: str | None
) -> None:
    response = count(gateway, body, tenant.admin_key)

    assert response.status_code == status, response.text
    error = response.json()
    assert (error["type"], error["error"]["type"]) == ("error", error_type)
    assert message is None or error["error"]["message"] == message


def test_keys_are_checked_as_for_messages(
    gateway: str, platform_url: str, serving_tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    small_only = small_only_key(serving_tenant)
    read_only = read_only_key(serving_tenant)
    revoked = committed_key(serving_tenant, "gone", [ApiKeyScope.INFERENCE])
    committed(lambda: revoke_api_key(revoked.api_key))

    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(platform_url, small_only.secret).messages.count_tokens(model="sim-large", messages=MESSAGES)
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(platform_url, read_only.secret).messages.count_tokens(model="sim-small", messages=MESSAGES)
    with pytest.raises(anthropic.AuthenticationError):
        sdk(platform_url, revoked.secret).messages.count_tokens(model="sim-small", messages=MESSAGES)
    assert count(gateway, {"model": "sim-small", "messages": MESSAGES}, "").status_code == 401
    # Another tenant's key counts with its own models and tenant: nothing of this one's is read.
    theirs = sdk(platform_url, other_tenant.admin_key).messages.count_tokens(
        model="sim-small", messages=MESSAGES
    )
    assert theirs.input_tokens == estimate(PROMPT, 1)
