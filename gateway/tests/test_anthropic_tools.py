"""Tools through /v1/messages with the official anthropic SDK: tool_use blocks
whose input follows the tool's schema, streamed and not, then a tool_result turn."""

from __future__ import annotations

from collections.abc import Sequence

import jsonschema
from anthropic.types import MessageParam, ToolChoiceToolParam, ToolParam, ToolUseBlock

from gateway.tests.test_anthropic_messages import sdk
from testing.tenants import TenantFixture

WEATHER_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
}
TOOLS: list[ToolParam] = [
    {"name": "get_weather", "description": "The forecast for a city.", "input_schema": WEATHER_SCHEMA},
    {"name": "get_time", "description": "The time in a city.", "input_schema": {"type": "object"}},
]
QUESTION: list[MessageParam] = [{"role": "user", "content": "What should I wear in Oslo this week?"}]


def tool_uses(content: Sequence[object]) -> list[ToolUseBlock]:
    return [block for block in content if isinstance(block, ToolUseBlock)]


def test_a_required_tool_is_called_with_input_that_follows_its_schema_then_answered(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    client = sdk(platform_url, tenant.admin_key)

    called = client.messages.create(
        model="sim-small", max_tokens=256, messages=QUESTION, tools=TOOLS, tool_choice={"type": "any"}
    )

    assert called.stop_reason == "tool_use"
    [use] = tool_uses(called.content)
    assert use.name == "get_weather"
    jsonschema.validate(use.input, WEATHER_SCHEMA)
    answered = client.messages.create(
        model="sim-small",
        max_tokens=256,
        tools=TOOLS,
        messages=[
            *QUESTION,
            called.to_param(),
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Rain, 9 C"}],
            },
        ],
    )
    assert answered.stop_reason == "end_turn"
    assert [block.type for block in answered.content] == ["text"]


def test_a_streamed_tool_call_arrives_as_input_json_deltas_the_sdk_assembles(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    client = sdk(platform_url, tenant.admin_key)
    choice: ToolChoiceToolParam = {"type": "tool", "name": "get_weather"}

    with client.messages.stream(
        model="sim-small",
        max_tokens=256,
        messages=QUESTION,
        tools=TOOLS,
        tool_choice=choice,
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    unstreamed = client.messages.create(
        model="sim-small",
        max_tokens=256,
        messages=QUESTION,
        tools=TOOLS,
        tool_choice=choice,
    )

    assert kinds.count("input_json") > 1
    assert final.stop_reason == "tool_use"
    [use] = tool_uses(final.content)
    jsonschema.validate(use.input, WEATHER_SCHEMA)
    assert use.input == tool_uses(unstreamed.content)[0].input


def test_tools_named_in_the_prompt_are_called_in_parallel_unless_disabled(
    gateway: str, platform_url: str, tenant: TenantFixture
) -> None:
    client = sdk(platform_url, tenant.admin_key)
    prompt: list[MessageParam] = [{"role": "user", "content": "Call get_weather and get_time for Oslo."}]

    parallel = client.messages.create(model="sim-small", max_tokens=256, messages=prompt, tools=TOOLS)
    single = client.messages.create(
        model="sim-small",
        max_tokens=256,
        messages=prompt,
        tools=TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    with client.messages.stream(model="sim-small", max_tokens=256, messages=prompt, tools=TOOLS) as stream:
        streamed = stream.get_final_message()

    assert [use.name for use in tool_uses(parallel.content)] == ["get_weather", "get_time"]
    assert [use.name for use in tool_uses(single.content)] == ["get_weather"]
    assert [use.input for use in tool_uses(streamed.content)] == [
        use.input for use in tool_uses(parallel.content)
    ]
