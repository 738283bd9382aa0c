"""The Messages request as the chat body the service runs: tool_use and
tool_result blocks, tools and tool_choice, sampling fields (no servers)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.anthropic_mapping import MessageEvents, message_from_completion, to_chat_body
from gateway.errors import GatewayError

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {"name": "get_weather", "description": "The weather in a city.", "input_schema": WEATHER_SCHEMA}


def request(**fields: Any) -> dict[str, Any]:
    return {
        "model": "sim-small",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi."}],
        **fields,
    }


def test_a_tool_round_trip_becomes_openai_tool_calls_and_tool_messages() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "Sunny"}],
                },
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]

    chat = to_chat_body(request(system="Be brief.", messages=messages, tools=[WEATHER]))

    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER_SCHEMA,
            },
        }
    ]


def test_an_assistant_turn_of_tool_calls_only_has_null_content() -> None:
    turn = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {}}],
    }

    chat = to_chat_body(request(messages=[{"role": "user", "content": "x"}, turn], tools=[WEATHER]))

    assert chat["messages"][1]["content"] is None


@pytest.mark.parametrize(
    ("choice", "mapped"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
    ],
)
def test_tool_choice_maps_to_openais(choice: dict[str, Any], mapped: dict[str, Any]) -> None:
    chat = to_chat_body(request(tools=[WEATHER], tool_choice=choice))

    assert {name: chat[name] for name in mapped} == mapped
    assert chat.get("parallel_tool_calls") == mapped.get("parallel_tool_calls")


def test_sampling_fields_are_passed_and_top_k_is_dropped() -> None:
    chat = to_chat_body(
        request(
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stop_sequences=["END"],
            stream=True,
            metadata={"user_id": "u-1"},
        )
    )

    assert chat == {
        "model": "sim-small",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi."}],
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "stream": True,
        "user": "u-1",
    }


def test_an_image_becomes_an_image_url_part() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}

    chat = to_chat_body(
        request(messages=[{"role": "user", "content": [{"type": "text", "text": "What?"}, image]}])
    )

    assert chat["messages"][0]["content"] == [
        {"type": "text", "text": "What?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type: Server tools"),
        ({"tools": [{"name": "x y", "input_schema": {"type": "object"}}]}, "tools.0.name: A tool name"),
        ({"tools": [{"name": "x", "input_schema": {"type": "string"}}]}, "tools.0.input_schema:"),
        ({"tool_choice": {"type": "any"}}, "tool_choice: tool_choice `any` needs `tools`."),
        ({"tools": [WEATHER], "tool_choice": {"type": "tool"}}, "tool_choice.name: Field required."),
        ({"temperature": 1.5}, "temperature: Input should be a number from 0 to 1."),
        ({"stop_sequences": "END"}, "stop_sequences:"),
        ({"metadata": {"user_id": "u", "tier": 1}}, "metadata:"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "messages.0.content.0.tool_use_id: Field required.",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "n", "input": 1}],
                    }
                ]
            },
            "messages.0.content.0.input: Input should be an object.",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": ""}]}]},
            "messages.0.content.0:",
        ),
    ],
)
def test_what_cannot_be_mapped_is_refused_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(GatewayError) as raised:
        to_chat_body(request(**fields))

    assert (raised.value.status, raised.value.type) == (400, "invalid_request_error")
    assert raised.value.message.startswith(message)


def test_a_completion_with_tool_calls_is_a_message_of_tool_use_blocks() -> None:
    completion = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    }

    message = message_from_completion(completion, "msg_1", "sim-small")

    assert message["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 20,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10,
    }


def test_streamed_tool_calls_become_tool_use_blocks_after_the_text() -> None:
    events = MessageEvents("msg_1")
    body = events.delta({"content": "Checking."})
    body += events.delta(
        {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "a", "arguments": ""}}]}
    )
    body += events.delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]})
    body += events.delta(
        {"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "b", "arguments": "{}"}}]}
    )
    body += events.finish("tool_calls", {"prompt_tokens": 5, "completion_tokens": 3})

    names = [
        line.removeprefix(b"event: ").decode() for line in body.splitlines() if line.startswith(b"event: ")
    ]
    assert names == [
        "content_block_start",  # text, index 0
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # call_1, index 1
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # call_2, index 2
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert b'"stop_reason":"tool_use"' in body
