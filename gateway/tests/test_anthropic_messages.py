"""POST /v1/messages through the official anthropic SDK and raw HTTP, over real servers."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, MetadataParam

from billing.models import UsageEvent
from gateway.simulated.provider import ChatMessage, answer_words
from gateway.tests.keys import read_only_key, small_only_key
from gateway.tests.test_gateway_metering import ledger_rows
from tenants.models import ApiKeyScope
from tenants.services import create_api_key, revoke_api_key
from testing.database import committed
from testing.tenants import TenantFixture

PROMPT = "Say something about tenancy."
MESSAGES: list[MessageParam] = [{"role": "user", "content": PROMPT}]
EXPECTED = " ".join(answer_words([ChatMessage("user", PROMPT)]))


def sdk(platform_url: str, key: str) -> anthropic.Anthropic:
    """The SDK as a user points it: the host, without /v1 (the SDK adds /v1/messages)."""
    return anthropic.Anthropic(base_url=platform_url, api_key=key, max_retries=0, timeout=20)


def post(gateway: str, body: object, **headers: str) -> httpx.Response:
    return httpx.post(f"{gateway}/messages", json=body, headers=headers, timeout=20)


def test_a_message_through_the_sdk_is_the_models_answer_with_usage(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    raw = sdk(platform_url, tenant.admin_key).messages.with_raw_response.create(
        model="sim-medium", max_tokens=256, messages=MESSAGES
    )
    message = raw.parse()

    assert message.id == "msg_" + raw.headers["x-request-id"].removeprefix("req_")
    assert (message.type, message.role, message.model) == ("message", "assistant", "sim-medium")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == EXPECTED  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.usage.output_tokens == len(EXPECTED.split())
    assert message.usage.input_tokens == len(PROMPT.split()) + 3
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert raw.headers["x-aiaas-model"] == "sim-medium"


def test_max_tokens_cuts_the_answer_with_stop_reason_max_tokens(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    message = sdk(platform_url, tenant.admin_key).messages.create(
        model="sim-small", max_tokens=5, messages=MESSAGES
    )

    assert message.content[0].text == " ".join(EXPECTED.split()[:5])  # type: ignore[union-attr]
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 5)


def test_a_streamed_message_through_the_sdk_is_whole(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    with sdk(platform_url, tenant.admin_key).messages.stream(
        model="sim-small", max_tokens=256, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == EXPECTED
    assert final.content[0].text == EXPECTED  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(EXPECTED.split())
    assert final.usage.input_tokens == len(PROMPT.split()) + 3


def test_a_raw_stream_sends_the_messages_event_types_in_order(gateway: str, tenant: TenantFixture) -> None:
    body = {"model": "sim-small", "max_tokens": 3, "messages": MESSAGES, "stream": True}
    headers = {"x-api-key": tenant.admin_key, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{gateway}/messages", json=body, headers=headers, timeout=20) as response:
        names = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_a_system_prompt_and_earlier_turns_reach_the_model(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    turns: list[MessageParam] = [
        {"role": "user", "content": "Hello."},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]},
        {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
    ]
    client = sdk(platform_url, tenant.admin_key)

    as_string = client.messages.create(model="sim-small", max_tokens=256, system="Be brief.", messages=turns)
    as_blocks = client.messages.create(
        model="sim-small", max_tokens=256, system=[{"type": "text", "text": "Be brief."}], messages=turns
    )

    conversation = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hello."),
        ChatMessage("assistant", "Hi."),
        ChatMessage("user", PROMPT),
    ]
    expected = " ".join(answer_words(conversation))
    assert as_string.content[0].text == expected  # type: ignore[union-attr]
    assert as_blocks.content[0].text == expected  # type: ignore[union-attr]
    usage = as_string.usage
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) == 1 + 2 + 1 + 4 + 3 * 4


def test_an_unknown_model_is_a_not_found_error(
    platform_url: str, gateway: str, tenant: TenantFixture
) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        sdk(platform_url, tenant.admin_key).messages.create(
            model="claude-nope", max_tokens=8, messages=MESSAGES
        )

    assert raised.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "The model `claude-nope` does not exist."},
        "request_id": raised.value.response.headers["x-request-id"],
    }
    assert raised.value.request_id == raised.value.response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "sim-small", "messages": MESSAGES}, "max_tokens: Field required."),
        (
            {"model": "sim-small", "max_tokens": 0, "messages": MESSAGES},
            "max_tokens: Input should be greater",
        ),
        ({"max_tokens": 8, "messages": MESSAGES}, "model: Field required."),
        ({"model": "sim-small", "max_tokens": 8, "messages": []}, "messages: Input should be a non-empty"),
        (
            {"model": "sim-small", "max_tokens": 8, "messages": MESSAGES, "n": 2},
            "n: Extra inputs are not permitted.",
        ),
        (
            {"model": "sim-small", "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]},
            "messages.0: Each message needs a `role`",
        ),
        (
            {
                "model": "sim-small",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}],
            },
            "messages.0.content.0: Content blocks of type `document` are not supported",
        ),
        (
            {"model": "sim-small", "max_tokens": 8, "messages": MESSAGES, "thinking": {"type": "enabled"}},
            "thinking: Extended thinking is not supported",
        ),
    ],
)
def test_bad_input_is_an_invalid_request_error_naming_the_field(
    gateway: str, tenant: TenantFixture, body: dict[str, object], message: str
) -> None:
    response = post(gateway, body, **{"x-api-key": tenant.admin_key})

    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["message"].startswith(message)


def test_the_sdk_gets_a_bad_request_error_without_max_tokens(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    client = sdk(platform_url, tenant.admin_key)

    with pytest.raises(anthropic.BadRequestError) as raised:
        client.post("/v1/messages", body={"model": "sim-small", "messages": MESSAGES}, cast_to=httpx.Response)

    assert raised.value.status_code == 400
    assert raised.value.type == "invalid_request_error"


def test_a_bad_key_is_an_authentication_error(gateway: str, platform_url: str) -> None:
    with pytest.raises(anthropic.AuthenticationError) as raised:
        sdk(platform_url, "aiaas_nope").messages.create(model="sim-small", max_tokens=8, messages=MESSAGES)

    assert raised.value.type == "authentication_error"
    assert raised.value.status_code == 401


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        ({}, 401, "authentication_error"),
        ({"x-api-key": "aiaas_nope"}, 401, "authentication_error"),
        ({"anthropic-version": "2023-01-01"}, 400, "invalid_request_error"),
        ({"anthropic-version": "latest"}, 400, "invalid_request_error"),
    ],
)
def test_headers_the_gateway_cannot_serve_are_refused(
    gateway: str, tenant: TenantFixture, headers: dict[str, str], status: int, error_type: str
) -> None:
    key = {} if "x-api-key" in headers or not headers else {"x-api-key": tenant.admin_key}
    body = {"model": "sim-small", "max_tokens": 8, "messages": MESSAGES}

    response = post(gateway, body, **key, **headers)

    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type


def test_the_key_is_accepted_as_x_api_key_or_bearer_and_not_as_two_different_keys(
    gateway: str, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    body = {"model": "sim-small", "max_tokens": 8, "messages": MESSAGES}

    as_header = post(gateway, body, **{"x-api-key": tenant.admin_key})
    as_bearer = post(gateway, body, authorization=f"Bearer {tenant.admin_key}")
    both = post(
        gateway, body, **{"x-api-key": tenant.admin_key, "authorization": f"Bearer {tenant.admin_key}"}
    )
    two = post(
        gateway, body, **{"x-api-key": tenant.admin_key, "authorization": f"Bearer {other_tenant.admin_key}"}
    )

    assert [r.status_code for r in (as_header, as_bearer, both, two)] == [200, 200, 200, 401]


def test_a_revoked_key_is_an_authentication_error(
    gateway: str, platform_url: str, serving_tenant: TenantFixture
) -> None:
    issued = committed(
        lambda: create_api_key(serving_tenant.tenant, name="messages", scopes=[ApiKeyScope.INFERENCE])
    )
    client = sdk(platform_url, issued.secret)
    client.messages.create(model="sim-small", max_tokens=4, messages=MESSAGES)

    committed(lambda: revoke_api_key(issued.api_key))

    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model="sim-small", max_tokens=4, messages=MESSAGES)


def test_a_key_without_the_inference_scope_is_a_permission_error(
    gateway: str, platform_url: str, serving_tenant: TenantFixture
) -> None:
    issued = read_only_key(serving_tenant)

    with pytest.raises(anthropic.PermissionDeniedError) as raised:
        sdk(platform_url, issued.secret).messages.create(model="sim-small", max_tokens=4, messages=MESSAGES)

    assert raised.value.type == "permission_error"


def test_messages_are_metered_to_the_callers_tenant_only(
    gateway: str, platform_url: str, serving_tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    mine = sdk(platform_url, serving_tenant.admin_key).messages.with_raw_response.create(
        model="sim-small", max_tokens=16, messages=MESSAGES
    )
    with sdk(platform_url, other_tenant.admin_key).messages.stream(
        model="sim-small", max_tokens=16, messages=MESSAGES
    ) as stream:
        stream.until_done()
        theirs = stream.response.headers["x-request-id"]
    ours = mine.headers["x-request-id"]

    events = ledger_rows({ours, theirs})

    assert (events[ours].tenant_id, events[theirs].tenant_id) == (
        serving_tenant.tenant.pk,
        other_tenant.tenant.pk,
    )
    assert (events[ours].status, events[ours].completion_tokens) == (200, mine.parse().usage.output_tokens)
    assert (events[theirs].status, events[theirs].completion_tokens) == (200, 16)
    assert UsageEvent.objects.filter(request_id__in={ours, theirs}).count() == 2


def test_a_stream_nobody_can_finish_ends_with_an_error_event(
    gateway: str, platform_url: str, serving_tenant: TenantFixture
) -> None:
    """sim-small cuts its stream halfway, and the key may use no other model."""
    issued = small_only_key(serving_tenant)
    client = sdk(platform_url, issued.secret)
    metadata: MetadataParam = {"user_id": "fault:stream_cut"}

    text: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(
            model="sim-small", max_tokens=64, messages=MESSAGES, metadata=metadata
        ) as stream,
    ):
        text.extend(stream.text_stream)

    assert 0 < len("".join(text).split()) < 64
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": raised.value.body["error"]["message"]},  # type: ignore[index]
        "request_id": stream.response.headers["x-request-id"],
    }
    assert "cut its response" in raised.value.message
