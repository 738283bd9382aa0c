"""/v1/responses through the official openai SDK (sync and async) and raw HTTP,
against the served platform and the simulated provider, which answers
deterministically from the conversation it is sent: an exact answer proves
what the prompt held."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import openai
import orjson
import pytest
from openai.types.responses import FunctionToolParam

from gateway.simulated.provider import ChatMessage, answer_words
from gateway.tests.test_gateway_metering import ledger_rows
from testing.tenants import TenantFixture

PROMPT = "Say something about tenancy."
EXPECTED = " ".join(answer_words([ChatMessage("user", PROMPT)]))
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sdk(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway, api_key=key, max_retries=0, timeout=20)


def async_sdk(gateway: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway, api_key=key, max_retries=0, timeout=20)


def answer(*messages: tuple[str, str]) -> str:
    return " ".join(answer_words([ChatMessage(role, content) for role, content in messages]))


def test_a_plain_response_is_the_models_answer_with_usage(gateway: str, tenant: TenantFixture) -> None:
    raw = sdk(gateway, tenant.admin_key).responses.with_raw_response.create(model="sim-small", input=PROMPT)
    response = raw.parse()

    assert response.id == "resp_" + raw.headers["x-request-id"].removeprefix("req_")
    assert (response.object, response.status, response.model) == ("response", "completed", "sim-small")
    assert response.output_text == EXPECTED
    [message] = response.output
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.content[0].type == "output_text"
    assert message.content[0].annotations == []
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (len(PROMPT.split()) + 3, 64)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert response.to_dict()["store"] is True
    assert response.previous_response_id is None


async def test_instructions_and_items_reach_the_model_as_a_conversation(
    gateway: str, tenant: TenantFixture
) -> None:
    response = await async_sdk(gateway, tenant.admin_key).responses.create(
        model="sim-small",
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Use plain words."},
            {"role": "user", "content": [{"type": "input_text", "text": PROMPT}]},
        ],
        reasoning={"effort": "low"},
    )

    expected = answer(("system", "Be brief."), ("system", "Use plain words."), ("user", PROMPT))
    assert response.output_text == expected
    assert response.instructions == "Be brief."
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 8
    assert response.usage.input_tokens_details.cached_tokens == (2 + 3) + (
        3 + 3
    )  # every message but the last


def test_max_output_tokens_makes_an_incomplete_response(gateway: str, tenant: TenantFixture) -> None:
    response = sdk(gateway, tenant.admin_key).responses.create(
        model="sim-small", input=PROMPT, max_output_tokens=16
    )

    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == " ".join(EXPECTED.split()[:16])
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]


def test_a_streamed_response_through_the_sdk_helper_is_whole_and_stored(
    gateway: str, tenant: TenantFixture
) -> None:
    client = sdk(gateway, tenant.admin_key)
    with client.responses.stream(model="sim-small", input=PROMPT) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert "".join(deltas) == EXPECTED
    assert final.output_text == EXPECTED
    assert final.status == "completed"
    assert final.usage is not None
    assert final.usage.output_tokens == 64
    assert client.responses.retrieve(final.id).output_text == EXPECTED


async def test_a_raw_stream_sends_the_responses_events_in_order(gateway: str, tenant: TenantFixture) -> None:
    stream = await async_sdk(gateway, tenant.admin_key).responses.create(
        model="sim-small", input=PROMPT, max_output_tokens=16, stream=True
    )
    events = [event async for event in stream]

    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 16,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    assert final.id == events[0].response.id  # type: ignore[union-attr]
    assert final.to_dict()["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final.output_text == " ".join(EXPECTED.split()[:16])


def test_previous_response_id_continues_the_stored_conversation_without_its_instructions(
    gateway: str, tenant: TenantFixture
) -> None:
    client = sdk(gateway, tenant.admin_key)
    first = client.responses.create(model="sim-small", instructions="Be brief.", input="Hello.")
    second = client.responses.create(model="sim-small", input=PROMPT, previous_response_id=first.id)

    assert first.output_text == answer(("system", "Be brief."), ("user", "Hello."))
    assert second.output_text == answer(
        ("user", "Hello."), ("assistant", first.output_text), ("user", PROMPT)
    )
    assert second.previous_response_id == first.id
    items = client.responses.input_items.list(second.id, order="asc")
    assert [(item.type, getattr(item, "role", None)) for item in items.data] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]


async def test_a_streamed_turn_continues_a_conversation_too(gateway: str, tenant: TenantFixture) -> None:
    client = async_sdk(gateway, tenant.admin_key)
    first = await client.responses.create(model="sim-small", input="Hello.")
    async with client.responses.stream(
        model="sim-small", input=PROMPT, previous_response_id=first.id
    ) as stream:
        final = await stream.get_final_response()

    assert final.output_text == answer(("user", "Hello."), ("assistant", first.output_text), ("user", PROMPT))


def test_a_function_tool_is_called_then_its_output_answered(gateway: str, tenant: TenantFixture) -> None:
    client = sdk(gateway, tenant.admin_key)
    called = client.responses.create(model="sim-small", input="Use get_weather for Oslo.", tools=[WEATHER])

    [call] = called.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.call_id.startswith("call_")
    jsonschema_rs.validate(WEATHER["parameters"] or {}, orjson.loads(call.arguments))
    assert called.tools[0].name == "get_weather"  # type: ignore[union-attr]

    answered = client.responses.create(
        model="sim-small",
        previous_response_id=called.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny."}],
    )

    assert answered.output_text == answer(
        ("user", "Use get_weather for Oslo."), ("assistant", ""), ("tool", "Sunny.")
    )


def test_a_streamed_tool_call_arrives_as_argument_deltas(gateway: str, tenant: TenantFixture) -> None:
    with sdk(gateway, tenant.admin_key).responses.stream(
        model="sim-small", input="Weather in Oslo?", tools=[WEATHER], tool_choice="required"
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()

    [call] = final.output
    assert call.type == "function_call"
    jsonschema_rs.validate(WEATHER["parameters"] or {}, orjson.loads(call.arguments))
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_a_json_schema_format_is_answered_with_json_that_follows_it(
    gateway: str, tenant: TenantFixture
) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "summary": {"type": "string"}},
        "required": ["title", "summary"],
        "additionalProperties": False,
    }
    response = sdk(gateway, tenant.admin_key).responses.create(
        model="sim-small",
        input=PROMPT,
        text={"format": {"type": "json_schema", "name": "note", "schema": schema, "strict": True}},
    )

    jsonschema_rs.validate(schema, orjson.loads(response.output_text))
    assert response.text is not None
    assert response.text.to_dict()["format"] == {
        "type": "json_schema",
        "name": "note",
        "schema": schema,
        "strict": True,
    }


def test_a_stored_response_is_retrieved_then_deleted(gateway: str, tenant: TenantFixture) -> None:
    client = sdk(gateway, tenant.admin_key)
    created = client.responses.create(model="sim-small", input=PROMPT, metadata={"team": "a"})

    retrieved = client.responses.retrieve(created.id)
    deleted = httpx.delete(
        f"{gateway}/responses/{created.id}", headers={"authorization": f"Bearer {tenant.admin_key}"}
    )

    assert retrieved.model_dump() == created.model_dump()
    assert retrieved.metadata == {"team": "a"}
    assert (deleted.status_code, deleted.json()) == (
        200,
        {"id": created.id, "object": "response", "deleted": True},
    )
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_an_unstored_response_cannot_be_retrieved_or_continued(gateway: str, tenant: TenantFixture) -> None:
    client = sdk(gateway, tenant.admin_key)
    created = client.responses.create(model="sim-small", input=PROMPT, store=False)

    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="sim-small", input=PROMPT, previous_response_id=created.id)
    assert raised.value.code == "previous_response_not_found"


def test_another_tenants_response_is_not_found_and_stays(
    gateway: str, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    created = sdk(gateway, tenant.admin_key).responses.create(model="sim-small", input=PROMPT)
    outsider = sdk(gateway, other_tenant.admin_key)

    with pytest.raises(openai.NotFoundError):
        outsider.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        outsider.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        outsider.responses.input_items.list(created.id)
    with pytest.raises(openai.BadRequestError) as raised:
        outsider.responses.create(model="sim-small", input=PROMPT, previous_response_id=created.id)

    assert raised.value.code == "previous_response_not_found"
    assert sdk(gateway, tenant.admin_key).responses.retrieve(created.id).output_text == EXPECTED


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "sim-small"}, "input"),
        ({"model": "sim-small", "input": 5}, "input"),
        ({"model": "sim-small", "input": PROMPT, "temprature": 1}, "temprature"),
        ({"model": "sim-small", "input": PROMPT, "background": True}, "background"),
        ({"model": "sim-small", "input": PROMPT, "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "sim-small", "input": PROMPT, "max_output_tokens": 4}, "max_output_tokens"),
        ({"model": "sim-small", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "sim-small", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"model": "sim-small", "input": PROMPT, "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"model": "sim-small", "input": PROMPT, "store": "yes"}, "store"),
        # Found by the chat service underneath, named as the Responses request names it.
        (
            {
                "model": "sim-small",
                "input": PROMPT,
                "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "nope"}}},
            },
            "text.format.schema",
        ),
        (
            {
                "model": "sim-small",
                "input": PROMPT,
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "x",
                        "schema": {"$ref": "https://example.com/s.json"},
                    }
                },
            },
            "text.format.schema",
        ),
        ({"model": "sim-small", "input": PROMPT, "metadata": {"team": "a\x00"}}, "metadata"),
        ({"model": "sim-small", "input": PROMPT, "metadata": {"te\x00am": "a"}}, "metadata"),
        (
            {"model": "sim-small", "input": PROMPT, "previous_response_id": "resp_nope"},
            "previous_response_id",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    gateway: str, tenant: TenantFixture, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(
        f"{gateway}/responses", json=body, headers={"authorization": f"Bearer {tenant.admin_key}"}, timeout=20
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "response_format" not in response.json()["error"]["message"]


def test_responses_are_metered_to_the_callers_tenant(
    gateway: str, serving_tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    mine = sdk(gateway, serving_tenant.admin_key).responses.create(model="sim-small", input=PROMPT)
    with sdk(gateway, other_tenant.admin_key).responses.stream(model="sim-small", input=PROMPT) as stream:
        theirs = stream.get_final_response()
    ours_id, theirs_id = (f"req_{response.id.removeprefix('resp_')}" for response in (mine, theirs))

    events = ledger_rows({ours_id, theirs_id})

    assert (events[ours_id].tenant_id, events[theirs_id].tenant_id) == (
        serving_tenant.tenant.pk,
        other_tenant.tenant.pk,
    )
    assert (events[ours_id].status, events[ours_id].completion_tokens) == (200, 64)
    assert (events[theirs_id].status, events[theirs_id].completion_tokens) == (200, 64)
