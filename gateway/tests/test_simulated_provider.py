"""The simulated provider, served for real and driven by the official openai SDK and httpx."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from django.core.management import CommandError, call_command
from openai.types.chat import ChatCompletionMessageParam

from gateway.simulated.provider import VOCABULARY, Fault, SimulatorConfig
from testing.simulated import running_simulated_provider

CONFIG = SimulatorConfig(
    no_response_seconds=1.0,
    slow_first_token_seconds=1.0,
    stall_seconds=1.0,
    flap_down_seconds=0.5,
    flap_period_seconds=1.0,
)
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the capital of France?"}]
QUESTION_PROMPT_TOKENS = 6 + 3
STREAM_FAULTS = {Fault.STREAM_CUT, Fault.STREAM_STALL, Fault.MALFORMED_CHUNK, Fault.MISSING_DONE}


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    with running_simulated_provider(CONFIG) as url:
        yield url


@pytest.fixture
def url(simulator_url: str) -> str:
    """The base URL of a simulator with its counters, error_once memory and flap clock reset."""
    httpx.post(admin_url(simulator_url, "reset"), timeout=5).raise_for_status()
    return simulator_url


@pytest.fixture
def sdk(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=url, api_key="sim", max_retries=0) as client:
        yield client


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=5) as client:
        yield client


def admin_url(base_url: str, action: str) -> str:
    return f"{base_url.removesuffix('/v1')}/_sim/{action}"


def chat(model: str = "sim-small", fault: Fault | str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": QUESTION, **fields}
    if fault is not None:
        body["user"] = f"fault:{fault}"
    return body


def stream_chat(model: str = "sim-small", fault: Fault | None = None, **fields: Any) -> dict[str, Any]:
    return chat(model, fault, stream=True, stream_options={"include_usage": True}, **fields)


def read_events(response: httpx.Response, events: list[str]) -> None:
    """Append each event's data to `events` as it arrives, so a broken stream keeps what came."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            events.append(line.removeprefix("data: "))


def stream_events(http: httpx.Client, body: dict[str, Any]) -> list[str]:
    events: list[str] = []
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        read_events(response, events)
    return events


def contents(events: list[str]) -> str:
    chunks = [json.loads(event) for event in events if event not in {"[DONE]", "{not json"}]
    return "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks if chunk["choices"])


def answer_to(http: httpx.Client, **fields: Any) -> str:
    response = http.post("/chat/completions", json=chat("sim-medium", **fields))
    assert response.status_code == 200
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def error(code: str | None, message: str, type_: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# Models, answers, streams, embeddings


def test_it_lists_the_three_simulated_models(sdk: openai.OpenAI) -> None:
    models = sdk.models.list().data

    assert [model.id for model in models] == ["sim-small", "sim-medium", "sim-large"]
    assert {(model.object, model.owned_by) for model in models} == {("model", "aiaas-simulated")}


def test_every_response_is_labelled_simulated(http: httpx.Client) -> None:
    responses = [
        http.get("/models"),
        http.post("/chat/completions", json=chat()),
        http.post("/chat/completions", content=b"{"),
        http.post("/chat/completions", json=chat(fault=Fault.RATE_LIMITED)),
        http.get("/nowhere"),
    ]

    assert [response.status_code for response in responses] == [200, 200, 400, 429, 404]
    assert {response.headers["x-simulated-provider"] for response in responses} == {"1"}


def test_a_completion_is_deterministic_and_counts_words_as_tokens(sdk: openai.OpenAI) -> None:
    first = sdk.chat.completions.create(model="sim-small", messages=QUESTION)
    second = sdk.chat.completions.create(model="sim-small", messages=QUESTION)

    content = first.choices[0].message.content or ""
    assert second.choices[0].message.content == content
    assert len(content.split(" ")) == 64
    assert set(content.split(" ")) <= set(VOCABULARY)
    assert first.id.startswith("chatcmpl-")
    assert (first.object, first.model, first.choices[0].finish_reason) == (
        "chat.completion",
        "sim-small",
        "stop",
    )
    assert first.usage is not None
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.total_tokens) == (
        QUESTION_PROMPT_TOKENS,
        64,
        QUESTION_PROMPT_TOKENS + 64,
    )


def test_every_model_gives_the_same_answer_and_other_prompts_other_answers(http: httpx.Client) -> None:
    answers = {
        model: http.post("/chat/completions", json=chat(model)).json()["choices"][0]["message"]["content"]
        for model in ("sim-small", "sim-medium", "sim-large")
    }
    other = http.post(
        "/chat/completions", json={"model": "sim-small", "messages": [{"role": "user", "content": "Hi"}]}
    )

    assert len(set(answers.values())) == 1
    assert other.json()["choices"][0]["message"]["content"] != answers["sim-small"]


def test_max_tokens_cuts_the_answer_with_finish_reason_length(http: httpx.Client) -> None:
    full = answer_to(http)

    for field in ("max_tokens", "max_completion_tokens"):
        body = http.post("/chat/completions", json={**chat(), field: 5}).json()
        assert body["choices"][0]["message"]["content"] == " ".join(full.split(" ")[:5])
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 5


def test_a_stream_joins_to_the_non_stream_answer_and_ends_with_usage(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="sim-small", messages=QUESTION)
    chunks = list(
        sdk.chat.completions.create(
            model="sim-small",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    opening, *tokens, finish, usage = chunks
    assert (opening.choices[0].delta.role, opening.choices[0].delta.content) == ("assistant", "")
    assert len(tokens) == 64
    assert (
        "".join(chunk.choices[0].delta.content or "" for chunk in tokens) == answer.choices[0].message.content
    )
    assert tokens[0].choices[0].delta.content == (answer.choices[0].message.content or "").split(" ")[0]
    assert [chunk.choices[0].finish_reason for chunk in (opening, *tokens)] == [None] * 65
    assert (finish.choices[0].finish_reason, finish.choices[0].delta.content) == ("stop", None)
    assert usage.choices == []
    assert usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (QUESTION_PROMPT_TOKENS, 64)
    assert len({chunk.id for chunk in chunks}) == 1


def test_the_raw_stream_is_server_sent_events_ending_with_done(http: httpx.Client) -> None:
    with http.stream("POST", "/chat/completions", json=chat(stream=True)) as response:
        events: list[str] = []
        read_events(response, events)

    assert response.headers["content-type"] == "text/event-stream"
    assert len(events) == 1 + 64 + 1 + 1
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert contents(events) == answer_to(http)


def test_embeddings_are_deterministic_unit_vectors(sdk: openai.OpenAI, http: httpx.Client) -> None:
    first = sdk.embeddings.create(model="sim-small", input=["red apple", "green pear"])
    again = sdk.embeddings.create(model="sim-large", input="red apple")
    short = sdk.embeddings.create(model="sim-medium", input="red apple", dimensions=8)
    as_floats = http.post("/embeddings", json={"model": "sim-small", "input": "red apple"}).json()

    apple, pear = (item.embedding for item in first.data)
    assert [len(apple), len(pear), len(short.data[0].embedding)] == [64, 64, 8]
    assert all(math.isclose(math.hypot(*vector), 1.0, abs_tol=1e-6) for vector in (apple, pear))
    assert again.data[0].embedding == apple
    assert apple != pear
    assert as_floats["data"][0]["embedding"] == pytest.approx(apple, abs=1e-6)
    assert (first.object, first.model, [item.index for item in first.data]) == ("list", "sim-small", [0, 1])
    assert (first.usage.prompt_tokens, first.usage.total_tokens) == (4, 4)


def test_json_object_content_is_the_answer_as_json(sdk: openai.OpenAI, http: httpx.Client) -> None:
    answer = sdk.chat.completions.create(
        model="sim-small",
        messages=QUESTION,
        response_format={"type": "json_object"},
    )

    assert json.loads(answer.choices[0].message.content or "") == {"answer": answer_to(http)}


def test_json_schema_content_fills_the_required_string_properties(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "summary": {"type": "string"},
            "score": {"type": "integer"},
        },
        "required": ["title", "summary", "score"],
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "card", "schema": schema}}

    content = answer_to(http, response_format=response_format)

    words = answer_to(http).split(" ")
    assert json.loads(content) == {"title": " ".join(words[:32]), "summary": " ".join(words[32:])}


def test_a_planted_answer_replaces_the_answer_of_conversations_holding_its_text(
    http: httpx.Client, url: str
) -> None:
    planted = {"when_contains": "capital of France", "content": '{"verdict": "pass", "reasoning": "ok"'}
    httpx.post(admin_url(url, "answers"), json=planted, timeout=5).raise_for_status()
    response_format = {"type": "json_object"}
    body = {"model": "sim-large", "messages": QUESTION, "response_format": response_format}

    planted_answer = http.post("/chat/completions", json=body).json()
    other = http.post("/chat/completions", json={**body, "messages": [{"role": "user", "content": "Hi"}]})

    assert planted_answer["choices"][0]["message"]["content"] == planted["content"]
    assert planted_answer["choices"][0]["finish_reason"] == "stop"
    assert planted_answer["usage"]["completion_tokens"] == 4  # one per space-separated piece
    assert "verdict" not in other.json()["choices"][0]["message"]["content"]
    httpx.post(admin_url(url, "reset"), timeout=5).raise_for_status()
    assert answer_to(http, response_format=response_format) != planted["content"]


def test_planting_needs_the_text_and_the_content(url: str) -> None:
    response = httpx.post(admin_url(url, "answers"), json={"content": "x"}, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "when_contains"


def test_a_continuation_returns_exactly_the_remaining_words(http: httpx.Client) -> None:
    words = answer_to(http).split(" ")
    partial_answer = " ".join(words[:10])
    messages = [*QUESTION, {"role": "assistant", "content": partial_answer}]

    answer = http.post("/chat/completions", json={"model": "sim-large", "messages": messages}).json()
    streamed = stream_events(http, {"model": "sim-small", "messages": messages, "stream": True})
    shortened = http.post(
        "/chat/completions", json={"model": "sim-small", "messages": messages, "max_tokens": 15}
    ).json()

    continuation = answer["choices"][0]["message"]["content"]
    assert continuation == " " + " ".join(words[10:])
    assert partial_answer + continuation == " ".join(words)
    assert contents(streamed) == continuation
    assert answer["usage"]["completion_tokens"] == 54
    assert answer["usage"]["prompt_tokens"] == QUESTION_PROMPT_TOKENS + 10 + 3
    assert shortened["choices"][0]["message"]["content"] == " " + " ".join(words[10:15])
    assert shortened["choices"][0]["finish_reason"] == "length"


def test_a_continuation_after_trailing_whitespace_adds_no_space(http: httpx.Client) -> None:
    words = answer_to(http).split(" ")
    messages = [*QUESTION, {"role": "assistant", "content": " ".join(words[:3]) + " "}]

    answer = http.post("/chat/completions", json={"model": "sim-small", "messages": messages}).json()

    assert answer["choices"][0]["message"]["content"] == " ".join(words[3:])


# Errors


def test_an_unknown_model_is_a_404_model_not_found(sdk: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="gpt-nope", messages=QUESTION)
    response = http.post("/embeddings", json={"model": "gpt-nope", "input": "x"})

    assert response.status_code == 404
    assert response.json() == error(
        "model_not_found",
        "The model `gpt-nope` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model",
    )


def test_a_body_that_is_not_json_is_a_400(http: httpx.Client) -> None:
    response = http.post("/chat/completions", content=b'{"model": ')

    assert response.status_code == 400
    assert response.json() == error(
        "invalid_json", "We could not parse the JSON body of your request.", "invalid_request_error"
    )


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": QUESTION}, "model", "missing_required_parameter"),
        ({"model": 3, "messages": QUESTION}, "model", "invalid_type"),
        ({"model": "sim-small", "messages": []}, "messages", "invalid_type"),
        (
            {"model": "sim-small", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "invalid_type",
        ),
        (
            {"model": "sim-small", "messages": [{"role": "king", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        (chat(max_tokens="many"), "max_tokens", "invalid_type"),
        (chat(max_tokens=0), "max_tokens", "invalid_value"),
        (chat(stream="yes"), "stream", "invalid_type"),
        (chat(response_format={"type": "yaml"}), "response_format.type", "invalid_value"),
        (chat(user=7), "user", "invalid_type"),
    ],
)
def test_a_field_of_the_wrong_type_or_value_is_a_400_naming_it(
    http: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    response = http.post("/chat/completions", json=body)

    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "sim-small", "input": []}, "input"),
        ({"model": "sim-small", "input": {"text": "x"}}, "input"),
        ({"model": "sim-small", "input": "x", "dimensions": 3073}, "dimensions"),
        ({"model": "sim-small", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ],
)
def test_a_bad_embeddings_field_is_a_400_naming_it(
    http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    response = http.post("/embeddings", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_a_request_beyond_the_context_window_is_rejected_on_any_model(http: httpx.Client) -> None:
    too_long_for_small = http.post(
        "/chat/completions", json=chat(max_tokens=4096 - QUESTION_PROMPT_TOKENS + 1)
    )
    fits_medium = http.post("/chat/completions", json=chat("sim-medium", max_tokens=4096))
    too_long_for_medium = http.post("/chat/completions", json=chat("sim-medium", max_tokens=16_384))

    assert [too_long_for_small.status_code, fits_medium.status_code, too_long_for_medium.status_code] == [
        400,
        200,
        400,
    ]
    assert too_long_for_small.json() == error(
        "context_length_exceeded",
        "This model's maximum context length is 4096 tokens. However, you requested 4097 tokens "
        "(9 in the messages, 4088 in the completion). Please reduce the length of the input.",
        "invalid_request_error",
        "messages",
    )
    assert too_long_for_medium.json()["error"]["code"] == "context_length_exceeded"


# Faults on sim-small


def test_rate_limited_is_a_429_with_retry_after(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model="sim-small", messages=QUESTION, user="fault:rate_limited")

    assert raised.value.status_code == 429
    assert raised.value.response.headers["retry-after"] == "1"
    assert raised.value.response.json() == error(
        "rate_limit_exceeded", "Rate limit reached (simulated).", "requests"
    )


def test_rate_limited_no_retry_after_is_a_429_without_retry_after(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json=chat(fault=Fault.RATE_LIMITED_NO_RETRY_AFTER))

    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_error_once_fails_each_conversation_once(http: httpx.Client, url: str) -> None:
    other_question = [{"role": "user", "content": "And of Spain?"}]

    statuses = [
        http.post("/chat/completions", json=chat(fault=Fault.ERROR_ONCE)).status_code,
        http.post("/chat/completions", json=chat(fault=Fault.ERROR_ONCE)).status_code,
        http.post(
            "/chat/completions", json=chat(fault=Fault.ERROR_ONCE, messages=other_question)
        ).status_code,
    ]
    http.post(admin_url(url, "reset"))
    after_reset = http.post("/chat/completions", json=chat(fault=Fault.ERROR_ONCE))

    assert statuses == [500, 200, 500]
    assert after_reset.status_code == 500
    assert after_reset.json() == error("server_error", "The server had an error (simulated).", "server_error")


def test_unavailable_is_always_a_503(http: httpx.Client) -> None:
    responses = [http.post("/chat/completions", json=chat(fault=Fault.UNAVAILABLE)) for _ in range(2)]

    assert [response.status_code for response in responses] == [503, 503]
    assert responses[0].json()["error"]["code"] == "service_unavailable"


def test_reset_drops_the_connection_without_any_response(http: httpx.Client, sdk: openai.OpenAI) -> None:
    with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
        http.post("/chat/completions", json=chat(fault=Fault.RESET))
    with pytest.raises(openai.APIConnectionError):
        sdk.chat.completions.create(model="sim-small", messages=QUESTION, user="fault:reset")


def test_no_response_sends_nothing_while_the_client_waits(http: httpx.Client) -> None:
    started = time.monotonic()

    with pytest.raises(httpx.ReadTimeout):
        http.post("/chat/completions", json=chat(fault=Fault.NO_RESPONSE), timeout=0.3)

    assert time.monotonic() - started < 0.9


def test_no_response_closes_the_connection_after_its_time(http: httpx.Client) -> None:
    started = time.monotonic()

    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        http.post("/chat/completions", json=chat(fault=Fault.NO_RESPONSE))

    assert time.monotonic() - started >= 1.0


def test_slow_first_token_delays_a_non_stream_answer(http: httpx.Client) -> None:
    started = time.monotonic()

    response = http.post("/chat/completions", json=chat(fault=Fault.SLOW_FIRST_TOKEN))

    assert time.monotonic() - started >= 1.0
    assert response.json()["choices"][0]["message"]["content"] == answer_to(http)


def test_slow_first_token_delays_the_first_chunk_after_the_headers(http: httpx.Client) -> None:
    started = time.monotonic()

    with http.stream("POST", "/chat/completions", json=stream_chat(fault=Fault.SLOW_FIRST_TOKEN)) as response:
        headers_after = time.monotonic() - started
        lines = response.iter_lines()
        first_line = next(lines)
        first_line_after = time.monotonic() - started
        last_line = [line for line in lines if line][-1]

    assert headers_after < 0.5
    assert first_line_after >= 1.0
    assert json.loads(first_line.removeprefix("data: "))["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
    }
    assert last_line == "data: [DONE]"


def test_stream_cut_ends_a_stream_midway_without_finishing(http: httpx.Client) -> None:
    events: list[str] = []

    with (
        pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
        http.stream("POST", "/chat/completions", json=stream_chat(fault=Fault.STREAM_CUT)) as response,
    ):
        read_events(response, events)

    assert len(events) == 1 + 32
    assert contents(events) == " ".join(answer_to(http).split(" ")[:32])
    assert all(json.loads(event)["choices"][0]["finish_reason"] is None for event in events)


def test_stream_cut_breaks_a_non_stream_body_short_of_its_length(http: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="peer closed connection without sending complete"):
        http.post("/chat/completions", json=chat(fault=Fault.STREAM_CUT))


def test_stream_stall_goes_silent_midway(http: httpx.Client) -> None:
    events: list[str] = []

    with (
        pytest.raises(httpx.ReadTimeout),
        http.stream(
            "POST", "/chat/completions", json=stream_chat(fault=Fault.STREAM_STALL), timeout=0.3
        ) as response,
    ):
        read_events(response, events)

    assert len(events) == 1 + 32


def test_stream_stall_closes_the_connection_after_its_time(http: httpx.Client) -> None:
    started = time.monotonic()

    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/chat/completions", json=stream_chat(fault=Fault.STREAM_STALL)) as response,
    ):
        read_events(response, [])

    assert time.monotonic() - started >= 1.0


def test_stream_stall_sends_a_non_stream_answer_only_its_headers(http: httpx.Client) -> None:
    with http.stream(
        "POST", "/chat/completions", json=chat(fault=Fault.STREAM_STALL), timeout=0.3
    ) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            response.read()


def test_malformed_chunk_sends_one_event_that_is_not_json_midway(http: httpx.Client) -> None:
    events = stream_events(http, stream_chat(fault=Fault.MALFORMED_CHUNK))

    assert events.index("{not json") == 1 + 32
    assert events.count("{not json") == 1
    assert len(events) == 1 + 64 + 1 + 1 + 1 + 1
    assert contents(events) == answer_to(http)
    assert events[-1] == "[DONE]"


def test_malformed_chunk_makes_a_non_stream_body_invalid_json(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json=chat(fault=Fault.MALFORMED_CHUNK))

    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_missing_done_ends_a_stream_cleanly_without_done(http: httpx.Client) -> None:
    events = stream_events(http, stream_chat(fault=Fault.MISSING_DONE))

    assert "[DONE]" not in events
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"
    assert json.loads(events[-1])["usage"]["completion_tokens"] == 64
    assert contents(events) == answer_to(http)


def test_missing_done_leaves_a_non_stream_answer_whole(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json=chat(fault=Fault.MISSING_DONE))

    assert response.json()["choices"][0]["message"]["content"] == answer_to(http)


def test_context_length_fault_is_a_400_context_length_exceeded(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json=chat(fault=Fault.CONTEXT_LENGTH))

    assert response.status_code == 400
    assert response.json() == error(
        "context_length_exceeded",
        "This model's maximum context length is 4096 tokens. However, your request is too long (simulated). "
        "Please reduce the length of the input.",
        "invalid_request_error",
        "messages",
    )


def test_flapping_fails_during_the_down_window_then_serves(http: httpx.Client, url: str) -> None:
    reset_at = time.monotonic()
    http.post(admin_url(url, "reset"))

    during = http.post("/chat/completions", json=chat(fault=Fault.FLAPPING))
    medium_during = http.post("/chat/completions", json=chat("sim-medium", fault=Fault.FLAPPING))
    time.sleep(max(0.0, reset_at + 0.6 - time.monotonic()))
    after = http.post("/chat/completions", json=chat(fault=Fault.FLAPPING))

    assert [during.status_code, medium_during.status_code, after.status_code] == [503, 200, 200]


@pytest.mark.parametrize("model", ["sim-small", "sim-medium"])
def test_an_unknown_fault_is_a_400_on_any_model(http: httpx.Client, model: str) -> None:
    response = http.post("/chat/completions", json=chat(model, fault="melt"))

    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == ("user", "unknown_fault")


@pytest.mark.parametrize("fault", list(Fault))
def test_faults_do_not_apply_to_sim_medium(http: httpx.Client, fault: Fault) -> None:
    answer = http.post("/chat/completions", json=chat("sim-medium", fault=fault))
    events = stream_events(http, stream_chat("sim-medium", fault=fault))

    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == answer_to(http)
    assert contents(events) == answer_to(http)
    assert events[-1] == "[DONE]"


def test_faults_apply_to_embeddings_on_sim_small_only(http: httpx.Client) -> None:
    body = {"input": "red apple", "user": "fault:rate_limited"}

    small = http.post("/embeddings", json={"model": "sim-small", **body})
    medium = http.post("/embeddings", json={"model": "sim-medium", **body})

    assert [small.status_code, medium.status_code] == [429, 200]


# Admin


def test_stats_count_requests_per_model_and_fault(http: httpx.Client, url: str) -> None:
    http.post("/chat/completions", json=chat(fault=Fault.RATE_LIMITED))
    http.post("/chat/completions", json=chat(fault=Fault.RATE_LIMITED))
    http.post("/chat/completions", json=chat("sim-medium", fault=Fault.RATE_LIMITED))
    http.post("/embeddings", json={"model": "sim-large", "input": "x"})

    stats = http.get(admin_url(url, "stats")).json()
    http.post(admin_url(url, "reset"))

    assert stats == {
        "requests_by_model": {"sim-small": 2, "sim-medium": 1, "sim-large": 1},
        "requests_by_fault": {"rate_limited": 2},
    }
    assert http.get(admin_url(url, "stats")).json() == {"requests_by_model": {}, "requests_by_fault": {}}


# Pacing and the command


def test_pacing_makes_larger_models_slower() -> None:
    config = SimulatorConfig(latency_ms=50, ttft_ms=100, tokens_per_second=400)

    with running_simulated_provider(config) as url, httpx.Client(base_url=url, timeout=5) as http:
        durations = {}
        for model in ("sim-small", "sim-large"):
            started = time.monotonic()
            http.post("/chat/completions", json=chat(model)).raise_for_status()
            durations[model] = time.monotonic() - started

    assert durations["sim-small"] >= 0.05 + 0.1 + 64 / 400
    assert durations["sim-large"] >= 0.05 + 0.2 + 64 / 200


def test_the_command_rejects_negative_pacing() -> None:
    with pytest.raises(CommandError, match="tokens_per_second must not be negative"):
        call_command("simulated_provider", "--tokens-per-second", "-1")


def test_the_pace_changes_while_serving() -> None:
    with running_simulated_provider() as base, httpx.Client(base_url=base, timeout=5) as client:
        assert client.post("/chat/completions", json=chat()).elapsed.total_seconds() < 0.2

        paced = httpx.post(admin_url(base, "pace"), json={"latency_ms": 300}, timeout=5)
        slow = client.post("/chat/completions", json=chat())
        refused = httpx.post(admin_url(base, "pace"), json={"latency_ms": "fast"}, timeout=5)
        negative = httpx.post(admin_url(base, "pace"), json={"latency_ms": -1}, timeout=5)

    assert paced.json() == {"latency_ms": 300.0, "ttft_ms": 0.0, "tokens_per_second": 0.0}
    assert slow.status_code == 200
    assert slow.elapsed.total_seconds() >= 0.3
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "latency_ms")
    assert negative.status_code == 400
