"""Drop-in compatibility of /v1 chat and embeddings, through the official openai
SDK (sync and async) and LangChain, against the served platform and the
simulated provider (which answers tools, n, logprobs and usage details)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import httpx
import jsonschema_rs
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from gateway.simulated.provider import ChatMessage, answer_words
from gateway.tests.keys import small_only_key
from testing.tenants import TenantFixture

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "when": {"type": "string", "format": "date"},
        "stops": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/stop"}},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
    "$defs": {
        "stop": {
            "type": "object",
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "name": {"type": "string"},
            },
            "required": ["lat", "name"],
        }
    },
}
TOOLS: list[ChatCompletionToolParam] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string"}},
                "required": ["zone"],
            },
        },
    },
]
SCHEMAS = {tool["function"]["name"]: tool["function"].get("parameters", {}) for tool in TOOLS}
PROMPT = "Say something about tenancy."
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]
EXPECTED = " ".join(answer_words([ChatMessage("user", PROMPT)]))
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sdk(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway, api_key=key, max_retries=0, timeout=20)


def async_sdk(gateway: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway, api_key=key, max_retries=0, timeout=20)


def asking(prompt: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": prompt}]


def assert_valid_arguments(name: str, arguments: str) -> None:
    jsonschema_rs.validate(SCHEMAS[name], orjson.loads(arguments))


def accumulate_tool_calls(chunks: list[Any]) -> dict[int, dict[str, str]]:
    """The tool calls of a streamed answer, as a client rebuilds them; checks the
    first delta of each call carries its id, type, name and empty arguments."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.index not in calls:
                    assert call.id
                    assert call.type == "function"
                    assert call.function.name
                    assert call.function.arguments == ""
                    calls[call.index] = {"id": call.id, "name": call.function.name, "arguments": ""}
                else:
                    assert call.id is None
                    calls[call.index]["arguments"] += call.function.arguments or ""
    return calls


def test_a_prompt_naming_a_tool_gets_a_tool_call_valid_for_its_schema(
    gateway: str, tenant: TenantFixture
) -> None:
    completion = sdk(gateway, tenant.admin_key).chat.completions.create(
        model="sim-small", messages=asking("Use get_weather for Oslo."), tools=TOOLS
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [call.function.name for call in calls] == ["get_weather"]  # type: ignore[union-attr]
    assert calls[0].id.startswith("call_")
    assert_valid_arguments("get_weather", calls[0].function.arguments)  # type: ignore[union-attr]
    assert len(orjson.loads(calls[0].function.arguments)["stops"]) == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("required", ["get_weather"]),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"]),
        ("auto", []),
    ],
)
def test_tool_choice_decides_whether_and_which_tool_is_called(
    gateway: str, tenant: TenantFixture, tool_choice: Any, expected: list[str]
) -> None:
    completion = sdk(gateway, tenant.admin_key).chat.completions.create(
        model="sim-small", messages=MESSAGES, tools=TOOLS, tool_choice=tool_choice
    )

    calls = completion.choices[0].message.tool_calls or []
    assert [call.function.name for call in calls] == expected  # type: ignore[union-attr]
    for call in calls:
        assert_valid_arguments(call.function.name, call.function.arguments)  # type: ignore[union-attr]
    if not expected:
        assert completion.choices[0].message.content == EXPECTED


@pytest.mark.parametrize(
    ("parallel", "expected"), [(True, ["get_weather", "get_time"]), (False, ["get_weather"])]
)
def test_parallel_tool_calls_streamed_rebuild_into_valid_arguments(
    gateway: str, tenant: TenantFixture, parallel: bool, expected: list[str]
) -> None:
    stream = sdk(gateway, tenant.admin_key).chat.completions.create(
        model="sim-small",
        messages=asking("Call get_weather and get_time, please."),
        tools=TOOLS,
        parallel_tool_calls=parallel,
        stream=True,
    )
    chunks = list(stream)

    calls = accumulate_tool_calls(chunks)
    assert [calls[index]["name"] for index in sorted(calls)] == expected
    for call in calls.values():
        assert_valid_arguments(call["name"], call["arguments"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_the_async_sdk_streams_tool_calls(gateway: str, tenant: TenantFixture) -> None:
    client = async_sdk(gateway, tenant.admin_key)
    stream = await client.chat.completions.create(
        model="sim-small", messages=asking("Call get_weather and get_time."), tools=TOOLS, stream=True
    )
    chunks = [chunk async for chunk in stream]
    await client.close()

    calls = accumulate_tool_calls(chunks)
    assert sorted(call["name"] for call in calls.values()) == ["get_time", "get_weather"]
    for call in calls.values():
        assert_valid_arguments(call["name"], call["arguments"])


def test_a_follow_up_with_the_tool_result_gets_an_answer(gateway: str, tenant: TenantFixture) -> None:
    client = sdk(gateway, tenant.admin_key)
    messages = asking("Use get_weather for Oslo.")
    first = client.chat.completions.create(model="sim-small", messages=messages, tools=TOOLS)
    call = (first.choices[0].message.tool_calls or [])[0]

    second = client.chat.completions.create(
        model="sim-small",
        tools=TOOLS,
        messages=[
            *messages,
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 3}'},
        ],
    )

    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    assert len((second.choices[0].message.content or "").split()) == 64


def test_a_stream_cut_inside_tool_calls_is_continued_whole(gateway: str, tenant: TenantFixture) -> None:
    """sim-small cuts the stream halfway through the arguments; sim-medium's replayed
    answer repeats what was sent, so the client gets each call once, complete."""
    client = sdk(gateway, tenant.admin_key)
    prompt = asking("Call get_weather and get_time.")
    whole = client.chat.completions.create(model="sim-medium", messages=prompt, tools=TOOLS)

    raw = client.chat.completions.with_raw_response.create(
        model="sim-small", messages=prompt, tools=TOOLS, stream=True, user="fault:stream_cut"
    )
    chunks = list(raw.parse())

    calls = accumulate_tool_calls(chunks)
    expected = [
        (call.function.name, call.function.arguments)  # type: ignore[union-attr]
        for call in whole.choices[0].message.tool_calls or []
    ]
    assert [(calls[index]["name"], calls[index]["arguments"]) for index in sorted(calls)] == expected
    assert raw.headers["x-aiaas-model"] == "sim-small"  # the head names the model that started it
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_several_choices_each_with_its_index_and_all_billed(gateway: str, tenant: TenantFixture) -> None:
    client = sdk(gateway, tenant.admin_key)
    completion = client.chat.completions.create(model="sim-small", messages=MESSAGES, n=3)
    stream = client.chat.completions.create(
        model="sim-small", messages=MESSAGES, n=3, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    assert completion.choices[0].message.content == EXPECTED
    assert len({choice.message.content for choice in completion.choices}) == 3
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3 * 64
    streamed = {index: "" for index in range(3)}
    for chunk in chunks:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert streamed == {choice.index: choice.message.content for choice in completion.choices}
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3 * 64


async def test_the_async_sdk_streams_several_choices(gateway: str, tenant: TenantFixture) -> None:
    client = async_sdk(gateway, tenant.admin_key)
    stream = await client.chat.completions.create(model="sim-small", messages=MESSAGES, n=2, stream=True)
    chunks = [chunk async for chunk in stream]
    await client.close()

    finishes = {
        choice.index: choice.finish_reason
        for chunk in chunks
        for choice in chunk.choices
        if choice.finish_reason
    }
    assert finishes == {0: "stop", 1: "stop"}


def test_logprobs_are_streamed_with_their_tokens(gateway: str, tenant: TenantFixture) -> None:
    stream = sdk(gateway, tenant.admin_key).chat.completions.create(
        model="sim-small", messages=MESSAGES, logprobs=True, top_logprobs=2, stream=True
    )

    entries = [
        (choice.delta.content, choice.logprobs.content if choice.logprobs else None)
        for chunk in stream
        for choice in chunk.choices
        if choice.delta.content
    ]
    assert len(entries) == 64
    for content, logprobs in entries:
        assert logprobs is not None
        assert len(logprobs) == 1
        assert logprobs[0].token == content
        assert logprobs[0].logprob <= 0
        assert [item.token for item in logprobs[0].top_logprobs][:1] == [content]
        assert len(logprobs[0].top_logprobs) == 2


async def test_the_async_sdk_gets_logprobs_and_usage_details(gateway: str, tenant: TenantFixture) -> None:
    client = async_sdk(gateway, tenant.admin_key)
    conversation: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief and kind."},
        {"role": "user", "content": PROMPT},
    ]
    completion = await client.chat.completions.create(
        model="sim-small", messages=conversation, logprobs=True, top_logprobs=1, reasoning_effort="high"
    )
    stream = await client.chat.completions.create(
        model="sim-small",
        messages=conversation,
        reasoning_effort="high",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    await client.close()

    assert completion.choices[0].logprobs is not None
    assert len(completion.choices[0].logprobs.content or []) == 64
    for usage in (completion.usage, chunks[-1].usage):
        assert usage is not None
        assert usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == 4 + 3
        assert usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens == 32
        assert usage.completion_tokens == 64 + 32


def test_json_schema_stop_seed_and_max_completion_tokens_are_honoured(
    gateway: str, tenant: TenantFixture
) -> None:
    client = sdk(gateway, tenant.admin_key)
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
    }
    structured = client.chat.completions.create(
        model="sim-small",
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
    )
    limited = client.chat.completions.create(model="sim-small", messages=MESSAGES, max_completion_tokens=5)
    stop_word = EXPECTED.split()[3]
    stopped = client.chat.completions.create(model="sim-small", messages=MESSAGES, stop=[stop_word])
    seeded = [client.chat.completions.create(model="sim-small", messages=MESSAGES, seed=7) for _ in range(2)]

    jsonschema_rs.validate(schema, orjson.loads(structured.choices[0].message.content or ""))
    assert (limited.choices[0].message.content, limited.choices[0].finish_reason) == (
        " ".join(EXPECTED.split()[:5]),
        "length",
    )
    assert (stopped.choices[0].message.content or "") == EXPECTED[: EXPECTED.index(stop_word)].rstrip()
    assert seeded[0].choices[0].message.content == seeded[1].choices[0].message.content != EXPECTED


def test_an_unknown_argument_is_refused_as_openai_refuses_it(gateway: str, tenant: TenantFixture) -> None:
    client = sdk(gateway, tenant.admin_key)

    with pytest.raises(openai.BadRequestError) as chat_error:
        client.chat.completions.create(model="sim-small", messages=MESSAGES, extra_body={"temprature": 0.2})
    with pytest.raises(openai.BadRequestError) as embeddings_error:
        client.embeddings.create(model="sim-small", input="x", extra_body={"truncate": True})

    assert chat_error.value.body == {
        "message": "Unrecognized request argument supplied: temprature",
        "type": "invalid_request_error",
        "param": "temprature",
        "code": "unrecognized_request_argument",
    }
    assert embeddings_error.value.code == "unrecognized_request_argument"


def test_a_model_is_retrieved_and_an_unknown_one_is_a_404(gateway: str, tenant: TenantFixture) -> None:
    client = sdk(gateway, tenant.admin_key)

    model = client.models.retrieve("sim-medium")
    routed = client.models.retrieve("auto")
    with pytest.raises(openai.NotFoundError) as error:
        client.models.retrieve("gpt-nope")

    assert (model.id, model.object, model.owned_by) == ("sim-medium", "model", "aiaas-simulated")
    assert routed.id == "auto"
    assert error.value.code == "model_not_found"
    assert error.value.body["param"] == "model"  # type: ignore[index]


def test_a_model_outside_the_keys_allow_list_is_a_404_to_retrieve(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    issued = small_only_key(serving_tenant)
    client = sdk(gateway, issued.secret)

    assert client.models.retrieve("sim-small").id == "sim-small"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("sim-large")


def test_embeddings_take_token_arrays_and_count_their_tokens(gateway: str, tenant: TenantFixture) -> None:
    client = sdk(gateway, tenant.admin_key)

    one = client.embeddings.create(model="sim-small", input=[15339, 1917, 0])
    several = client.embeddings.create(model="sim-small", input=[[15339, 1917], [1, 2, 3, 4]], dimensions=16)

    assert len(one.data) == 1
    assert len(one.data[0].embedding) == 64
    assert one.usage.prompt_tokens == 3
    assert [len(item.embedding) for item in several.data] == [16, 16]
    assert several.usage.prompt_tokens == 6


async def test_embeddings_in_base64_decode_to_the_float_vectors(gateway: str, tenant: TenantFixture) -> None:
    client = async_sdk(gateway, tenant.admin_key)
    floats = await client.embeddings.create(model="sim-small", input=["a b", "c"], encoding_format="float")
    packed = await client.embeddings.create(model="sim-small", input=["a b", "c"], encoding_format="base64")
    await client.close()

    for as_floats, as_base64 in zip(floats.data, packed.data, strict=True):
        raw = base64.b64decode(as_base64.embedding)  # type: ignore[arg-type]
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert decoded == pytest.approx(as_floats.embedding, abs=1e-6)


def test_two_authorization_headers_are_refused(gateway: str, tenant: TenantFixture) -> None:
    response = httpx.post(
        f"{gateway}/chat/completions",
        json={"model": "sim-small", "messages": MESSAGES},
        headers=[
            ("authorization", f"Bearer {tenant.admin_key}"),
            ("authorization", f"Bearer {tenant.admin_key}"),
        ],
        timeout=10,
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 200),
        ("application/json; charset=utf-8", 200),
        ("text/plain", 200),
        ("image/png", 415),
        ("application/x-www-form-urlencoded", 415),
    ],
)
def test_a_body_must_be_labelled_json(
    gateway: str, tenant: TenantFixture, content_type: str | None, status: int
) -> None:
    headers = {"authorization": f"Bearer {tenant.admin_key}"}
    if content_type is not None:
        headers["content-type"] = content_type
    body = orjson.dumps({"model": "sim-small", "messages": MESSAGES})

    response = httpx.post(f"{gateway}/chat/completions", content=body, headers=headers, timeout=10)

    assert response.status_code == status, response.text
    if status == 415:
        assert response.json()["error"]["code"] == "unsupported_media_type"


def test_langchain_chat_openai_talks_to_the_gateway(gateway: str, tenant: TenantFixture) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="sim-small", base_url=gateway, api_key=tenant.admin_key, max_retries=0)  # type: ignore[arg-type]

    assert chat.invoke(PROMPT).content == EXPECTED


def test_langchain_openai_embeddings_send_token_arrays_the_gateway_accepts(
    gateway: str, tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAIEmbeddings tokenizes with tiktoken and sends token arrays (its default).
    tiktoken's encodings are downloaded on first use, which this machine cannot do,
    so a byte-level encoding stands in for cl100k_base (the outside world only)."""
    import tiktoken
    import tiktoken.registry
    from langchain_openai import OpenAIEmbeddings

    byte_level = tiktoken.Encoding(
        "cl100k_base",
        pat_str=r"\S+|\s+",
        mergeable_ranks={bytes([b]): b for b in range(256)},
        special_tokens={},
    )
    monkeypatch.setitem(tiktoken.registry.ENCODINGS, "cl100k_base", byte_level)
    sent: list[Any] = []
    embeddings = OpenAIEmbeddings(
        model="sim-small",
        base_url=gateway,
        api_key=tenant.admin_key,  # type: ignore[arg-type]
        max_retries=0,
        http_client=httpx.Client(
            event_hooks={"request": [lambda request: sent.append(orjson.loads(request.read()))]}
        ),
    )

    vectors = embeddings.embed_documents(["hello world", "tenancy"])

    assert [len(vector) for vector in vectors] == [64, 64]
    assert sent[0]["input"] == [list(b"hello world"), list(b"tenancy")]
