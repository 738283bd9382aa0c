"""The stock SDKs' helpers a user's code calls beyond `create`, through the served
platform: openai's structured outputs (`parse`), its stream helper with
`pydantic_function_tool`, the usage chunk, raw and streaming responses, and the
SDK's default base64 embeddings; anthropic's `messages.stream` around a tool
round trip."""

from __future__ import annotations

import struct
from typing import Any

import anthropic
import openai
import orjson
import pytest
from pydantic import BaseModel

from gateway.tests.keys import small_only_key
from testing.tenants import TenantFixture

pytestmark = pytest.mark.anyio
PROMPT: Any = [{"role": "user", "content": "Describe the weather."}]


class Weather(BaseModel):
    city: str
    summary: str


class GetWeather(BaseModel):
    """The weather of a city."""

    city: str


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sdk(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway, api_key=key, max_retries=0, timeout=20)


def test_parse_answers_a_pydantic_model_through_a_strict_json_schema(
    gateway: str, tenant: TenantFixture
) -> None:
    completion = sdk(gateway, tenant.admin_key).chat.completions.parse(
        model="sim-small", messages=PROMPT, response_format=Weather
    )

    message = completion.choices[0].message
    assert isinstance(message.parsed, Weather)
    assert message.parsed == Weather.model_validate_json(message.content or "")
    assert message.parsed.city
    assert message.parsed.summary


async def test_the_async_sdk_parses_a_routed_answer(gateway: str, tenant: TenantFixture) -> None:
    async with openai.AsyncOpenAI(base_url=gateway, api_key=tenant.admin_key, max_retries=0) as client:
        completion = await client.chat.completions.parse(
            model="auto", messages=PROMPT, response_format=Weather
        )

    assert isinstance(completion.choices[0].message.parsed, Weather)


def test_the_stream_helper_parses_a_pydantic_tools_arguments_and_gets_usage(
    gateway: str, tenant: TenantFixture
) -> None:
    client = sdk(gateway, tenant.admin_key)
    with client.chat.completions.stream(
        model="sim-small",
        messages=[{"role": "user", "content": "Use GetWeather for Oslo."}],
        tools=[openai.pydantic_function_tool(GetWeather)],
        stream_options={"include_usage": True},
    ) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()

    call = (final.choices[0].message.tool_calls or [])[0]
    assert {"tool_calls.function.arguments.delta", "tool_calls.function.arguments.done"} <= kinds
    assert call.function.name == "GetWeather"
    assert isinstance(call.function.parsed_arguments, GetWeather)
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None
    assert final.usage.completion_tokens > 0


def test_the_usage_chunk_comes_last_with_no_choices(gateway: str, tenant: TenantFixture) -> None:
    chunks = list(
        sdk(gateway, tenant.admin_key).chat.completions.create(
            model="sim-small",
            messages=PROMPT,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_a_streaming_response_is_read_as_server_sent_events(gateway: str, tenant: TenantFixture) -> None:
    client = sdk(gateway, tenant.admin_key)
    with client.chat.completions.with_streaming_response.create(
        model="sim-small", messages=PROMPT, max_tokens=3, stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]
        request_id = response.headers["x-request-id"]

    chunks = [orjson.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert lines[-1] == "data: [DONE]"
    assert {chunk["id"] for chunk in chunks} == {f"chatcmpl-{request_id}"}


def test_refusals_are_the_sdks_exception_classes_with_code_and_param(
    gateway: str, tenant: TenantFixture, serving_tenant: TenantFixture
) -> None:
    small_only = small_only_key(serving_tenant).secret
    client = sdk(gateway, tenant.admin_key)
    calls: list[tuple[type[openai.APIStatusError], str, str | None, Any]] = [
        (openai.BadRequestError, "unrecognized_request_argument", "colour", {"extra_body": {"colour": 1}}),
        (openai.NotFoundError, "model_not_found", "model", {"model": "gpt-nope"}),
    ]
    for expected, code, param, options in calls:
        with pytest.raises(expected) as raised:
            client.chat.completions.create(**{"model": "sim-small", "messages": PROMPT, **options})
        assert (raised.value.code, raised.value.param) == (code, param)
    with pytest.raises(openai.PermissionDeniedError) as forbidden:
        sdk(gateway, small_only).chat.completions.create(model="sim-large", messages=PROMPT)
    with pytest.raises(openai.AuthenticationError) as unauthenticated:
        sdk(gateway, "aiaas_not_a_key").models.list()

    assert (forbidden.value.type, forbidden.value.code, forbidden.value.param) == (
        "permission_error",
        "model_not_allowed",
        "model",
    )
    assert unauthenticated.value.code == "invalid_api_key"


@pytest.mark.parametrize("model", ["sim-small", "local-embed"])
def test_the_sdks_default_base64_embeddings_are_the_float_ones_as_float32(
    gateway: str, tenant: TenantFixture, model: str
) -> None:
    client = sdk(gateway, tenant.admin_key)
    inputs = ["a b", "c"]

    default = client.embeddings.create(model=model, input=inputs)
    floats = client.embeddings.create(model=model, input=inputs, encoding_format="float")

    for packed, unpacked in zip(default.data, floats.data, strict=True):
        as_float32 = struct.unpack(
            f"<{len(unpacked.embedding)}f", struct.pack(f"<{len(unpacked.embedding)}f", *unpacked.embedding)
        )
        assert packed.embedding == list(as_float32)


def test_anthropic_stream_helper_calls_a_tool_then_answers_its_result(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    client = anthropic.Anthropic(base_url=platform_url, api_key=tenant.admin_key, max_retries=0, timeout=20)
    tools: Any = [
        {
            "name": "get_weather",
            "description": "The weather of a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    asked: Any = [{"role": "user", "content": "Use get_weather for Oslo."}]
    with client.messages.stream(model="sim-small", max_tokens=256, messages=asked, tools=tools) as stream:
        called = stream.get_final_message()
    use = next(block for block in called.content if block.type == "tool_use")
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C."}
    answered: Any = [
        *asked,
        {"role": "assistant", "content": called.content},
        {"role": "user", "content": [result]},
    ]
    with client.messages.stream(model="sim-small", max_tokens=256, messages=answered, tools=tools) as stream:
        answer = stream.get_final_message()

    assert called.stop_reason == "tool_use"
    assert (use.name, set(use.input)) == ("get_weather", {"city"})
    assert answer.stop_reason == "end_turn"
    assert [block.type for block in answer.content] == ["text"]
    assert answer.usage.output_tokens == len(answer.content[0].text.split())  # type: ignore[union-attr]
