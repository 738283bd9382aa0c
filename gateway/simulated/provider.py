"""A simulated OpenAI-compatible model provider: a real HTTP server, no real model.

The default upstream of `make run` and of the gateway's tests. It speaks OpenAI's
wire format (`/v1/models`, `/v1/chat/completions`, `/v1/embeddings`) closely
enough for the official SDK, answers deterministically so tests can assert exact
text, and fails on request so timeouts, retries and fallbacks can be exercised.
Every response carries `x-simulated-provider: 1` and every model is owned by
"aiaas-simulated".

What the gateway may rely on:

- Tokens. A token is one whitespace-separated word. prompt_tokens is the number
  of words across all message contents plus 3 per message; completion_tokens is
  the number of words in the answer (one per stream chunk).
- Answers. The answer to a conversation is ANSWER_WORDS (64) words drawn from
  VOCABULARY by a generator seeded with a SHA-256 of the messages (roles and
  contents). It does not depend on the model, so an answer resumed on another
  model reads exactly like an uninterrupted one. max_tokens (or
  max_completion_tokens) below 64 cuts it to that many words, with
  finish_reason "length"; otherwise finish_reason is "stop".
- Choices. `n` answers; choice 0 is the answer above, choice i > 0 is drawn from
  the same conversation with i (and `seed`, when given) mixed into the generator.
  A `stop` sequence cuts the content before it (finish_reason "stop").
  Streamed choices interleave, one token of each in turn, each chunk with its index.
- Tools. See gateway/simulated/tools.py for when tools are called and how their
  arguments are made. A tool call is streamed as OpenAI streams it: a first delta
  with index, id, type, name and empty arguments, then the arguments in fragments
  of 8 characters; each fragment and each name is one completion token, and the
  finish_reason is "tool_calls".
- Logprobs. With `logprobs`, each content token has a logprob and `top_logprobs`
  alternatives (the token first), derived from the token; streamed with it.
- Usage details. cached_tokens is the prompt tokens of every message but the last
  (earlier turns were seen before); `reasoning_effort` low, medium and high add 8,
  16 and 32 reasoning tokens, counted in completion_tokens as OpenAI counts them.
- Embeddings. `input` may be text, texts, a token array (list of ints) or token
  arrays; a token array of k tokens counts k tokens.
- JSON modes. With response_format json_object the content is compact JSON,
  {"answer": "<words>"}; with json_schema the words are shared among the
  schema's required string properties (all string properties when none is
  required; strings only, other properties are left out).
- Continuation. When the last message is the assistant's, it is a partial answer
  to resume: the reply is the answer to the conversation without that message,
  minus as many leading words as the partial answer holds. max_tokens bounds the
  whole answer, partial answer included, so the original request's max_tokens can
  be sent again. The reply starts with a space when the partial answer does not
  end in whitespace, so partial + reply is exactly the full answer. (In the JSON
  modes the words are those of the JSON text, so the same holds.)
- Pacing. Configured for sim-small; sim-medium is 1.5x and sim-large 2x slower.
  A stream sends its headers after latency_ms, its first chunk after the
  time-to-first-token, then one chunk per token at tokens_per_second; a
  non-stream answer arrives after the same total time.
- Faults. `"user": "fault:<name>"` (see Fault) applies to sim-small only, the
  cheapest tier, so a fallback to sim-medium can be observed; other models
  serve the request normally. Faults apply to embeddings too, as to a
  non-stream answer.
- Planted answers. `POST /_sim/answers` with `{"when_contains": "<text>",
  "content": "<answer>"}` makes every chat completion whose messages contain
  the text answer exactly that content, whatever the model and response
  format (planted JSON need not be valid: tests plant malformed answers too),
  one token per space-separated piece, until the next reset.
- Admin. `GET /_sim/stats` counts requests per model and per fault; `POST
  /_sim/reset` zeroes those counters, forgets error_once and planted answers,
  and restarts the flap clock. `POST /_sim/pace` with any of `{"latency_ms",
  "ttft_ms", "tokens_per_second"}` changes the pacing while serving (a provider
  slowing down mid-run: bench/degrade.py); a reset keeps it.

ASGI has no way for an app to cut its connection, and the reset, no_response,
stream_cut and stream_stall faults need one: serve the app with build_server(),
whose HTTP protocol exposes the connection to the app (CONNECTION_EXTENSION).
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from itertools import chain, zip_longest
from typing import Any, Protocol, TypeVar

import anyio
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.simulated.tools import Tool, ToolCall, ToolChoice, chosen_tools, tool_calls

OWNED_BY = "aiaas-simulated"
SIMULATED_HEADER = (b"x-simulated-provider", b"1")
MODELS_CREATED = 1_735_689_600  # 2025-01-01: a fixed date keeps /v1/models deterministic
ANSWER_WORDS = 64
MESSAGE_OVERHEAD_TOKENS = 3
EMBEDDING_DIMENSIONS = 64
MAX_EMBEDDING_DIMENSIONS = 3072
FAULTY_MODEL = "sim-small"
CONNECTION_EXTENSION = "aiaas.connection"
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
TOOL_CHOICE_MODES = frozenset({"auto", "none", "required"})
REASONING_TOKENS = {"minimal": 0, "low": 8, "medium": 16, "high": 32}
MAX_CHOICES = 128
MAX_TOP_LOGPROBS = 20
VOCABULARY = (
    "amber", "anchor", "aspen", "atlas", "basil", "beacon", "birch", "breeze",
    "cedar", "cinder", "cobalt", "comet", "coral", "crystal", "delta", "ember",
    "falcon", "fern", "fjord", "flint", "garnet", "glacier", "granite", "harbor",
    "hazel", "heron", "indigo", "iris", "ivory", "jasper", "juniper", "kestrel",
    "lagoon", "lantern", "lilac", "linen", "maple", "marble", "meadow", "mesa",
    "nectar", "nimbus", "oasis", "onyx", "orchid", "pebble", "pine", "prairie",
    "quartz", "raven", "reef", "river", "saffron", "sage", "sierra", "slate",
    "spruce", "summit", "thistle", "tundra", "valley", "willow", "yarrow", "zephyr",
)  # fmt: skip


class Fault(StrEnum):
    """Failures a request can ask sim-small for, as `"user": "fault:<name>"`."""

    RATE_LIMITED = "rate_limited"  # 429 with Retry-After: 1
    RATE_LIMITED_NO_RETRY_AFTER = "rate_limited_no_retry_after"  # 429 without Retry-After
    ERROR_ONCE = "error_once"  # 500 on a conversation's first request, then success
    UNAVAILABLE = "unavailable"  # 503, always
    RESET = "reset"  # the connection is reset (RST) before any response
    NO_RESPONSE = "no_response"  # nothing for no_response_seconds, then the connection closes
    # slow_first_token_seconds more before the first byte (non-stream) or chunk (stream)
    SLOW_FIRST_TOKEN = "slow_first_token"  # noqa: S105 (a fault name, no secret)
    STREAM_CUT = "stream_cut"  # about half the answer, then the connection closes
    STREAM_STALL = "stream_stall"  # about half (stream) or only the headers, stall_seconds, then close
    MALFORMED_CHUNK = "malformed_chunk"  # one `data: {not json` event midway; non-stream: invalid JSON
    MISSING_DONE = "missing_done"  # a stream without `data: [DONE]`; non-stream answers are normal
    CONTEXT_LENGTH = "context_length"  # 400 context_length_exceeded
    FLAPPING = "flapping"  # 503 during the first flap_down_seconds of every flap_period_seconds
    INVALID_JSON = (
        "invalid_json"  # in the JSON modes, content that is not valid JSON (its last token is missing)
    )


@dataclass(frozen=True)
class SimulatorConfig:
    """Pacing of sim-small (0: immediate) and the durations of the timed faults."""

    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    no_response_seconds: float = 120.0
    slow_first_token_seconds: float = 30.0
    stall_seconds: float = 120.0
    flap_down_seconds: float = 2.0
    flap_period_seconds: float = 4.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if self.flap_period_seconds <= 0:
            raise ValueError("flap_period_seconds must be positive")


@dataclass(frozen=True)
class SimulatedModel:
    model_id: str
    tier: int
    context_window: int
    slowdown: float  # how many times slower than the configured (sim-small) pace


MODELS = {
    model.model_id: model
    for model in (
        SimulatedModel("sim-small", tier=1, context_window=4_096, slowdown=1.0),
        SimulatedModel("sim-medium", tier=2, context_window=16_384, slowdown=1.5),
        SimulatedModel("sim-large", tier=3, context_window=65_536, slowdown=2.0),
    )
}


# Errors in OpenAI's shape


@dataclass(frozen=True)
class ApiError:
    status: int
    message: str
    type: str
    code: str | None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return json_response(body, status=self.status, headers=self.headers)


class RequestError(Exception):
    """The request cannot be served; `error` is the answer to send."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error

    def response(self) -> Response:
        return self.error.response()


def invalid(param: str | None, message: str, code: str | None = "invalid_value") -> RequestError:
    return RequestError(ApiError(400, message, "invalid_request_error", code, param))


def context_length_error(model: SimulatedModel, param: str, requested: str) -> ApiError:
    message = (
        f"This model's maximum context length is {model.context_window} tokens. However, {requested}. "
        "Please reduce the length of the input."
    )
    return ApiError(400, message, "invalid_request_error", "context_length_exceeded", param)


FAULT_ERRORS = {
    Fault.RATE_LIMITED: ApiError(
        429,
        "Rate limit reached (simulated).",
        "requests",
        "rate_limit_exceeded",
        headers={"retry-after": "1"},
    ),
    Fault.RATE_LIMITED_NO_RETRY_AFTER: ApiError(
        429, "Rate limit reached (simulated).", "requests", "rate_limit_exceeded"
    ),
    Fault.ERROR_ONCE: ApiError(500, "The server had an error (simulated).", "server_error", "server_error"),
    Fault.UNAVAILABLE: ApiError(
        503, "The server is overloaded (simulated).", "server_error", "service_unavailable"
    ),
    Fault.FLAPPING: ApiError(
        503, "The server is flapping (simulated).", "server_error", "service_unavailable"
    ),
}


def json_response(body: object, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


# Requests


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class ResponseFormat:
    type: str = "text"
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    response_format: ResponseFormat = ResponseFormat()
    fault: Fault | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    n: int = 1
    top_logprobs: int | None = None  # None: no logprobs asked for
    stop: tuple[str, ...] = ()
    seed: int | None = None
    reasoning_tokens: int = 0

    context_param = "messages"

    def conversation_key(self) -> bytes:
        return hashlib.sha256(
            orjson.dumps([self.model, [[m.role, m.content] for m in self.messages]])
        ).digest()

    def check_context(self, model: SimulatedModel) -> None:
        prompt_tokens = count_prompt_tokens(self.messages)
        requested = self.max_tokens or 0
        if prompt_tokens + requested > model.context_window:
            summary = (
                f"you requested {prompt_tokens + requested} tokens "
                f"({prompt_tokens} in the messages, {requested} in the completion)"
            )
            raise RequestError(context_length_error(model, self.context_param, summary))


@dataclass(frozen=True)
class EmbeddingsRequest:
    model: str
    inputs: tuple[str, ...]
    dimensions: int = EMBEDDING_DIMENSIONS
    encoding_format: str = "float"
    fault: Fault | None = None

    context_param = "input"

    def conversation_key(self) -> bytes:
        return hashlib.sha256(orjson.dumps([self.model, self.inputs])).digest()

    def check_context(self, model: SimulatedModel) -> None:
        longest = max(count_tokens(text) for text in self.inputs)
        if longest > model.context_window:
            summary = f"an input holds {longest} tokens"
            raise RequestError(context_length_error(model, self.context_param, summary))


T = TypeVar("T")
KIND_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
}


def optional_field(
    body: Mapping[str, object], name: str, kind: type[T], param: str | None = None
) -> T | None:
    """body[name] when present and of `kind` (an int is never a bool); None when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid(
            param or name, f"Invalid type for '{param or name}': expected {KIND_NAMES[kind]}.", "invalid_type"
        )
    return value


def required_field(body: Mapping[str, object], name: str, kind: type[T]) -> T:
    value = optional_field(body, name, kind)
    if value is None:
        raise invalid(name, f"Missing required parameter: '{name}'.", "missing_required_parameter")
    return value


def parse_chat_request(body: Mapping[str, object]) -> ChatRequest:
    """The chat request in `body`, or RequestError naming the first bad field."""
    stream_options = optional_field(body, "stream_options", dict) or {}
    tools = parse_tools(optional_field(body, "tools", list) or [])
    return ChatRequest(
        model=required_field(body, "model", str),
        messages=parse_messages(body.get("messages")),
        max_tokens=parse_max_tokens(body),
        stream=bool(optional_field(body, "stream", bool)),
        include_usage=bool(
            optional_field(stream_options, "include_usage", bool, "stream_options.include_usage")
        ),
        response_format=parse_response_format(optional_field(body, "response_format", dict)),
        fault=parse_fault(body),
        tools=tools,
        tool_choice=parse_tool_choice(body.get("tool_choice"), tools),
        parallel_tool_calls=optional_field(body, "parallel_tool_calls", bool) is not False,
        n=bounded_int(body, "n", 1, MAX_CHOICES) or 1,
        top_logprobs=(bounded_int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS) or 0)
        if optional_field(body, "logprobs", bool)
        else None,
        stop=parse_stop(body.get("stop")),
        seed=optional_field(body, "seed", int),
        reasoning_tokens=REASONING_TOKENS.get(optional_field(body, "reasoning_effort", str) or "", 0),
    )


def bounded_int(body: Mapping[str, object], name: str, low: int, high: int) -> int | None:
    value = optional_field(body, name, int)
    if value is not None and not low <= value <= high:
        raise invalid(name, f"'{name}' must be between {low} and {high}.")
    return value


def parse_tools(value: list[Any]) -> tuple[Tool, ...]:
    tools = []
    for index, item in enumerate(value):
        function = item.get("function") if isinstance(item, dict) and item.get("type") == "function" else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise invalid(
                f"tools[{index}]", f"'tools[{index}]' must be a function with a name.", "invalid_type"
            )
        parameters = function.get("parameters") if isinstance(function, dict) else None
        tools.append(Tool(name, parameters if isinstance(parameters, dict) else {"type": "object"}))
    return tuple(tools)


def parse_tool_choice(value: object, tools: Sequence[Tool]) -> ToolChoice:
    if value is None:
        return ToolChoice()
    if isinstance(value, str) and value in TOOL_CHOICE_MODES:
        return ToolChoice(value)
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise invalid("tool_choice", "'tool_choice' must be auto, none, required or a named function.")
    if name not in {tool.name for tool in tools}:
        raise invalid(
            "tool_choice", f"Invalid value for 'tool_choice': no function named '{name}' in 'tools'."
        )
    return ToolChoice("function", name)


def parse_stop(value: object) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value if value is not None else []
    if (
        not isinstance(stops, list)
        or len(stops) > 4
        or not all(isinstance(stop, str) and stop for stop in stops)
    ):
        raise invalid("stop", "'stop' must be a string or an array of up to 4 strings.", "invalid_type")
    return tuple(stops)


def parse_messages(value: object) -> tuple[ChatMessage, ...]:
    if not isinstance(value, list) or not value:
        raise invalid(
            "messages", "'messages' must be a non-empty array of {role, content} objects.", "invalid_type"
        )
    return tuple(parse_message(f"messages[{index}]", item) for index, item in enumerate(value))


def parse_message(param: str, item: object) -> ChatMessage:
    if not isinstance(item, dict):
        raise invalid(param, f"Invalid type for '{param}': expected an object.", "invalid_type")
    role = optional_field(item, "role", str, f"{param}.role")
    if role not in MESSAGE_ROLES:
        raise invalid(f"{param}.role", f"'{param}.role' must be one of {', '.join(sorted(MESSAGE_ROLES))}.")
    content = item.get("content")
    if isinstance(content, list):
        content = " ".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    if content is None and role == "assistant" and item.get("tool_calls"):
        content = ""
    if not isinstance(content, str):
        # Media parts are beyond what the simulator answers.
        raise invalid(
            f"{param}.content", f"'{param}.content' must be a string or text parts.", "invalid_type"
        )
    return ChatMessage(role, content)


def parse_max_tokens(body: Mapping[str, object]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = optional_field(body, name, int)
        if value is not None:
            if value < 1:
                raise invalid(name, f"Invalid '{name}': it must be at least 1.")
            return value
    return None


def parse_response_format(value: dict[str, Any] | None) -> ResponseFormat:
    if value is None:
        return ResponseFormat()
    kind = value.get("type")
    if kind not in RESPONSE_FORMATS:
        raise invalid(
            "response_format.type", f"'response_format.type' must be one of {sorted(RESPONSE_FORMATS)}."
        )
    if kind != "json_schema":
        return ResponseFormat(kind)
    json_schema = optional_field(value, "json_schema", dict, "response_format.json_schema") or {}
    schema = optional_field(json_schema, "schema", dict, "response_format.json_schema.schema")
    return ResponseFormat(kind, schema)


def parse_fault(body: Mapping[str, object]) -> Fault | None:
    user = optional_field(body, "user", str) or ""
    if not user.startswith("fault:"):
        return None
    name = user.removeprefix("fault:")
    try:
        return Fault(name)
    except ValueError:
        known = ", ".join(fault.value for fault in Fault)
        raise invalid("user", f"Unknown fault '{name}'. Known faults: {known}.", "unknown_fault") from None


def parse_embeddings_request(body: Mapping[str, object]) -> EmbeddingsRequest:
    """The embeddings request in `body`, or RequestError naming the first bad field."""
    dimensions = optional_field(body, "dimensions", int) or EMBEDDING_DIMENSIONS
    if not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
        raise invalid("dimensions", f"'dimensions' must be between 1 and {MAX_EMBEDDING_DIMENSIONS}.")
    encoding_format = optional_field(body, "encoding_format", str) or "float"
    if encoding_format not in {"float", "base64"}:
        raise invalid("encoding_format", "'encoding_format' must be 'float' or 'base64'.")
    return EmbeddingsRequest(
        model=required_field(body, "model", str),
        inputs=parse_inputs(body.get("input")),
        dimensions=dimensions,
        encoding_format=encoding_format,
        fault=parse_fault(body),
    )


def parse_inputs(value: object) -> tuple[str, ...]:
    """The inputs as texts; a token array becomes its tokens as words (k tokens, k words)."""
    inputs = [value] if isinstance(value, str) or is_token_array(value) else value
    if not isinstance(inputs, list) or not inputs:
        raise invalid(
            "input", "'input' must be a string, a token array or a non-empty array of them.", "invalid_type"
        )
    texts = []
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            texts.append(item)
        elif is_token_array(item):
            texts.append(" ".join(str(token) for token in item))
        else:
            raise invalid(
                f"input[{index}]", f"'input[{index}]' must be a string or a token array.", "invalid_type"
            )
    return tuple(texts)


def is_token_array(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(token, int) and not isinstance(token, bool) and token >= 0 for token in value)
    )


# Answers: pure functions


def seeded_random(data: bytes) -> random.Random:
    """A generator that yields the same sequence for the same data."""
    # Reproducibility is the point; nothing here is secret.
    return random.Random(int.from_bytes(hashlib.sha256(data).digest(), "big"))  # noqa: S311


def count_tokens(text: str) -> int:
    return len(text.split())


def count_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(count_tokens(message.content) + MESSAGE_OVERHEAD_TOKENS for message in messages)


def answer_words(
    messages: Sequence[ChatMessage], count: int = ANSWER_WORDS, variant: bytes = b""
) -> list[str]:
    """The first `count` words of the answer to `messages`, whatever the model
    (`variant`: another choice, or a seed)."""
    generator = seeded_random(conversation_seed(messages) + variant)
    return [generator.choice(VOCABULARY) for _ in range(count)]


def conversation_seed(messages: Sequence[ChatMessage]) -> bytes:
    return orjson.dumps([[message.role, message.content] for message in messages])


def render(words: Sequence[str], response_format: ResponseFormat) -> str:
    """The answer's content: the words, or compact JSON holding them."""
    if response_format.type == "text":
        return " ".join(words)
    keys = string_properties(response_format.schema or {}) if response_format.type == "json_schema" else []
    keys = keys or ["answer"]
    shares = [
        words[index * len(words) // len(keys) : (index + 1) * len(words) // len(keys)]
        for index in range(len(keys))
    ]
    return orjson.dumps({key: " ".join(share) for key, share in zip(keys, shares, strict=True)}).decode()


def string_properties(schema: Mapping[str, Any]) -> list[str]:
    """The schema's required string properties; all its string properties when none is required."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    required = schema.get("required")
    names = required if isinstance(required, list) else list(properties)
    return [
        name for name in names if isinstance(name, str) and properties.get(name, {}).get("type") == "string"
    ]


@dataclass(frozen=True)
class Choice:
    deltas: tuple[str, ...]  # the content as streamed, one token each: "".join(deltas) is the content
    finish_reason: str
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def content(self) -> str:
        return "".join(self.deltas)

    @property
    def completion_tokens(self) -> int:
        return len(self.deltas) + sum(len(call.fragments) + 1 for call in self.tool_calls)


@dataclass(frozen=True)
class Completion:
    choices: tuple[Choice, ...]
    prompt_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    top_logprobs: int | None = None  # None: no logprobs asked for

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices) + self.reasoning_tokens


def complete(chat: ChatRequest) -> Completion:
    """The answer to `chat`, resuming its final assistant message when there is one (see the module)."""
    conversation, partial_answer = split_continuation(chat.messages)
    last = conversation[-1] if conversation else ChatMessage("", "")
    tools = chosen_tools(
        chat.tools, chat.tool_choice, last.role, last.content, parallel=chat.parallel_tool_calls
    )
    choices = tuple(
        answer_choice(chat, conversation, partial_answer, tools, index) for index in range(chat.n)
    )
    cached = count_prompt_tokens(chat.messages[:-1])
    return Completion(
        choices, count_prompt_tokens(chat.messages), cached, chat.reasoning_tokens, chat.top_logprobs
    )


def answer_choice(
    chat: ChatRequest,
    conversation: Sequence[ChatMessage],
    partial_answer: str,
    tools: Sequence[Tool],
    index: int,
) -> Choice:
    variant = b"" if index == 0 and chat.seed is None else orjson.dumps([index, chat.seed])
    if tools:
        return Choice(
            (), "tool_calls", tool_calls(tools, conversation_seed(conversation) + variant, VOCABULARY)
        )
    budget = min(chat.max_tokens or ANSWER_WORDS, ANSWER_WORDS)
    content = render(answer_words(conversation, budget, variant), chat.response_format)
    cut = min((at for at in (content.find(stop) for stop in chat.stop) if at >= 0), default=-1)
    content = content[:cut].rstrip(" ") if cut >= 0 else content
    pieces = content.split(" ")[count_tokens(partial_answer) :] if content else []
    lead = " " if partial_answer and not partial_answer[-1].isspace() else ""
    deltas = tuple((lead if number == 0 else " ") + piece for number, piece in enumerate(pieces))
    return Choice(deltas, "length" if budget < ANSWER_WORDS and cut < 0 else "stop")


def split_continuation(messages: Sequence[ChatMessage]) -> tuple[Sequence[ChatMessage], str]:
    """The conversation to answer, and the partial answer already given ("" when none)."""
    if messages[-1].role == "assistant":
        return messages[:-1], messages[-1].content
    return messages, ""


def embed(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit vector that is the same for the same text, whatever the model."""
    generator = seeded_random(text.encode())
    vector = [generator.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.hypot(*vector)
    return [component / norm for component in vector]


def encode_embedding(vector: Sequence[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return list(vector)


# Response bodies


@dataclass(frozen=True)
class AnswerIdentity:
    completion_id: str
    model: str
    created: int

    @classmethod
    def new(cls, model: str) -> AnswerIdentity:
        return cls(f"chatcmpl-{uuid.uuid4().hex}", model, int(time.time()))

    def fields(self, kind: str) -> dict[str, object]:
        return {"id": self.completion_id, "object": kind, "created": self.created, "model": self.model}


def usage_body(completion: Completion) -> dict[str, object]:
    total = completion.prompt_tokens + completion.completion_tokens
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": completion.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": completion.reasoning_tokens},
    }


def completion_body(completion: Completion, identity: AnswerIdentity) -> dict[str, object]:
    return {
        **identity.fields("chat.completion"),
        "choices": [
            choice_body(choice, index, completion.top_logprobs)
            for index, choice in enumerate(completion.choices)
        ],
        "usage": usage_body(completion),
    }


def choice_body(choice: Choice, index: int, top_logprobs: int | None) -> dict[str, object]:
    message: dict[str, object] = {"role": "assistant", "content": choice.content or None, "refusal": None}
    if choice.tool_calls:
        message["tool_calls"] = [tool_call_body(call) for call in choice.tool_calls]
    else:
        message["content"] = choice.content
    logprobs = None
    if top_logprobs is not None:
        logprobs = {"content": [logprob(delta, top_logprobs) for delta in choice.deltas], "refusal": None}
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": choice.finish_reason}


def tool_call_body(call: ToolCall) -> dict[str, object]:
    return {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def logprob(token: str, top: int) -> dict[str, object]:
    """A token's logprob and `top` alternatives (the token first, then lower ones), derived from it."""
    generator = seeded_random(token.encode())
    value = -round(generator.random() * 2, 4)
    others = [word for word in generator.sample(VOCABULARY, top + 1) if word != token.strip()]
    alternatives = [token, *(" " + word for word in others)][:top]
    return {
        "token": token,
        "logprob": value,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": item, "logprob": round(value - rank, 4), "bytes": list(item.encode())}
            for rank, item in enumerate(alternatives)
        ],
    }


def chunk_event(
    identity: AnswerIdentity,
    delta: Mapping[str, object],
    finish_reason: str | None = None,
    *,
    index: int = 0,
    logprobs: Mapping[str, object] | None = None,
) -> bytes:
    choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
    return sse_event({**identity.fields("chat.completion.chunk"), "choices": [choice]})


def sse_event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


DONE_EVENT = b"data: [DONE]\n\n"
MALFORMED_EVENT = b"data: {not json\n\n"


@dataclass(frozen=True)
class StreamEvents:
    opening: bytes  # the role chunk
    tokens: tuple[bytes, ...]  # one chunk per token
    closing: tuple[bytes, ...]  # the finish_reason chunk, then the usage chunk when asked for


def stream_events(completion: Completion, identity: AnswerIdentity, *, include_usage: bool) -> StreamEvents:
    choices = list(enumerate(completion.choices))
    closing = [chunk_event(identity, {}, choice.finish_reason, index=index) for index, choice in choices]
    if include_usage:
        usage = usage_body(completion)
        closing.append(sse_event({**identity.fields("chat.completion.chunk"), "choices": [], "usage": usage}))
    per_choice = [
        choice_events(identity, index, choice, completion.top_logprobs) for index, choice in choices
    ]
    return StreamEvents(
        opening=b"".join(
            chunk_event(
                identity, {"role": "assistant", "content": None if choice.tool_calls else ""}, index=index
            )
            for index, choice in choices
        ),
        tokens=tuple(event for event in chain.from_iterable(zip_longest(*per_choice)) if event is not None),
        closing=tuple(closing),
    )


def choice_events(
    identity: AnswerIdentity, index: int, choice: Choice, top_logprobs: int | None
) -> list[bytes]:
    """One choice's token chunks: its content, or its tool calls as OpenAI streams them."""
    events = []
    for delta in choice.deltas:
        logprobs = (
            None if top_logprobs is None else {"content": [logprob(delta, top_logprobs)], "refusal": None}
        )
        events.append(chunk_event(identity, {"content": delta}, index=index, logprobs=logprobs))
    for position, call in enumerate(choice.tool_calls):
        opening = {
            "index": position,
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(chunk_event(identity, {"tool_calls": [opening]}, index=index))
        for fragment in call.fragments:
            piece = {"index": position, "function": {"arguments": fragment}}
            events.append(chunk_event(identity, {"tool_calls": [piece]}, index=index))
    return events


def embeddings_body(request: EmbeddingsRequest) -> dict[str, object]:
    tokens = sum(count_tokens(text) for text in request.inputs)
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": encode_embedding(embed(text, request.dimensions), request.encoding_format),
        }
        for index, text in enumerate(request.inputs)
    ]
    return {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def model_body(model: SimulatedModel) -> dict[str, object]:
    return {"id": model.model_id, "object": "model", "created": MODELS_CREATED, "owned_by": OWNED_BY}


# Server state


class Simulator:
    """One server's configuration and memory: error_once conversations, the flap clock, counters.

    Touched only from the server's event loop, so it needs no lock.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.failed_once: set[bytes] = set()
        self.flap_clock_started_at = time.monotonic()
        self.requests_by_model: Counter[str] = Counter()
        self.requests_by_fault: Counter[str] = Counter()
        self.planted: dict[str, str] = {}

    def admit(self, model_id: str, fault: Fault | None) -> None:
        """Count a request: per model, and per fault when the fault applies (sim-small)."""
        self.requests_by_model[model_id] += 1
        if fault is not None and model_id == FAULTY_MODEL:
            self.requests_by_fault[fault.value] += 1

    def strike(self, model: SimulatedModel, fault: Fault | None, conversation_key: bytes) -> Fault | None:
        """The fault this request suffers: none off sim-small, error_once and flapping only when due."""
        if fault is None or model.model_id != FAULTY_MODEL:
            return None
        if fault is Fault.ERROR_ONCE:
            if conversation_key in self.failed_once:
                return None
            self.failed_once.add(conversation_key)
        if fault is Fault.FLAPPING and not self.is_flapping_down():
            return None
        return fault

    def is_flapping_down(self) -> bool:
        elapsed = time.monotonic() - self.flap_clock_started_at
        return elapsed % self.config.flap_period_seconds < self.config.flap_down_seconds

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            "requests_by_model": dict(self.requests_by_model),
            "requests_by_fault": dict(self.requests_by_fault),
        }


@dataclass(frozen=True)
class Pace:
    first_token: float  # seconds before the first token
    per_token: float  # seconds between tokens

    @classmethod
    def of(cls, model: SimulatedModel, config: SimulatorConfig) -> Pace:
        per_token = model.slowdown / config.tokens_per_second if config.tokens_per_second else 0.0
        return cls(model.slowdown * config.ttft_ms / 1000, per_token)


# Delivery: responses written step by step, so they can pause, stall and break


class Exchange:
    """One HTTP exchange, written piece by piece, with control over its connection."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.send = send
        self.connection: dict[str, Callable[[], None]] = scope.get("extensions", {}).get(
            CONNECTION_EXTENSION, {}
        )
        self.client_left = False

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        await self.send({"type": "http.response.start", "status": status, "headers": raw_headers})

    async def write(self, body: bytes, *, more: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": body, "more_body": more})

    async def pause(self, seconds: float) -> bool:
        """Wait `seconds`, or less if the client leaves; whether it is still there."""
        if seconds > 0 and not self.client_left:
            with anyio.move_on_after(seconds):
                await self.until_client_left()
        return not self.client_left

    async def drop(self, *, reset: bool = False) -> None:
        """End the connection mid-exchange: closed (FIN after what was written) or, with `reset`, reset."""
        control = self.connection.get("reset" if reset else "close")
        if control is None:
            raise RuntimeError("Cutting a connection needs the protocol of build_server().")
        control()
        # Returning before the server has seen the connection go would let it finish the response.
        with anyio.move_on_after(5):
            await self.until_client_left()

    async def until_client_left(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.client_left = True


Script = Callable[[Exchange], Awaitable[None]]


class ScriptedResponse(Response):
    """A response that a script writes step by step (pacing, stalls, cut connections)."""

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.script(Exchange(scope, receive, send))


async def reset_connection(exchange: Exchange) -> None:
    await exchange.drop(reset=True)


async def send_nothing(exchange: Exchange, *, seconds: float) -> None:
    if await exchange.pause(seconds):
        await exchange.drop()


async def deliver_json(
    exchange: Exchange, body: bytes, *, wait: float, fault: Fault | None, config: SimulatorConfig
) -> None:
    """A JSON answer after `wait` seconds, or the version of it a delivery fault breaks."""
    if fault is Fault.SLOW_FIRST_TOKEN:
        wait += config.slow_first_token_seconds
    if not await exchange.pause(wait):
        return
    if fault is Fault.MALFORMED_CHUNK:
        body = body[: len(body) // 2]
    await exchange.start(200, {"content-type": "application/json", "content-length": str(len(body))})
    if fault is Fault.STREAM_CUT:
        await exchange.write(body[: len(body) // 2])
        await exchange.drop()
    elif fault is Fault.STREAM_STALL:
        if await exchange.pause(config.stall_seconds):
            await exchange.drop()
    else:
        await exchange.write(body, more=False)


async def deliver_stream(
    exchange: Exchange, events: StreamEvents, *, pace: Pace, fault: Fault | None, config: SimulatorConfig
) -> None:
    """Server-sent events paced like a model, or broken midway by a delivery fault."""
    await exchange.start(200, {"content-type": "text/event-stream", "cache-control": "no-cache"})
    first_token = pace.first_token + (
        config.slow_first_token_seconds if fault is Fault.SLOW_FIRST_TOKEN else 0
    )
    if not await exchange.pause(first_token):
        return
    await exchange.write(events.opening)
    midway = len(events.tokens) // 2
    for index, event in enumerate(events.tokens):
        if index == midway and not await break_midway(exchange, fault, config):
            return
        if not await exchange.pause(pace.per_token):
            return
        await exchange.write(event)
    for event in events.closing:
        await exchange.write(event)
    await exchange.write(b"" if fault is Fault.MISSING_DONE else DONE_EVENT, more=False)


async def break_midway(exchange: Exchange, fault: Fault | None, config: SimulatorConfig) -> bool:
    """Apply a stream fault halfway through; whether the stream goes on."""
    if fault is Fault.MALFORMED_CHUNK:
        await exchange.write(MALFORMED_EVENT)
    elif fault is Fault.STREAM_CUT:
        await exchange.drop()
        return False
    elif fault is Fault.STREAM_STALL:
        if await exchange.pause(config.stall_seconds):
            await exchange.drop()
        return False
    return True


# Endpoints


class ModelCall(Protocol):
    """What every model endpoint's request offers the shared handling."""

    @property
    def model(self) -> str: ...

    @property
    def fault(self) -> Fault | None: ...

    @property
    def context_param(self) -> str: ...

    def conversation_key(self) -> bytes: ...

    def check_context(self, model: SimulatedModel) -> None: ...


CallT = TypeVar("CallT", bound=ModelCall)
Answer = Callable[[CallT, SimulatedModel, Fault | None, SimulatorConfig], Response]


async def call_model(
    request: Request, parse: Callable[[Mapping[str, object]], CallT], answer: Answer[CallT]
) -> Response:
    """Validate, count, wait latency_ms, then answer or fail as the request's fault says."""
    simulator = simulator_of(request)
    try:
        call = parse(await json_body(request))
        simulator.admit(call.model, call.fault)
        model = known_model(call.model)
        call.check_context(model)
    except RequestError as error:
        return error.response()
    await anyio.sleep(simulator.config.latency_ms / 1000)
    fault = simulator.strike(model, call.fault, call.conversation_key())
    return fault_response(fault, model, call.context_param, simulator.config) or answer(
        call, model, fault, simulator.config
    )


def fault_response(
    fault: Fault | None, model: SimulatedModel, param: str, config: SimulatorConfig
) -> Response | None:
    """The answer that replaces the real one, or None when there is no fault or it breaks delivery only."""
    if fault is None:
        return None
    if fault in FAULT_ERRORS:
        return FAULT_ERRORS[fault].response()
    if fault is Fault.CONTEXT_LENGTH:
        return context_length_error(model, param, "your request is too long (simulated)").response()
    if fault is Fault.RESET:
        return ScriptedResponse(reset_connection)
    if fault is Fault.NO_RESPONSE:
        return ScriptedResponse(partial(send_nothing, seconds=config.no_response_seconds))
    return None


def answer_chat(
    chat: ChatRequest,
    model: SimulatedModel,
    fault: Fault | None,
    config: SimulatorConfig,
    planted: Mapping[str, str] | None = None,
) -> Response:
    completion = complete(chat)
    content = planted_content(chat, planted or {})
    if content is not None:
        completion = replace(completion, choices=(planted_choice(content),) * chat.n)
    if fault is Fault.INVALID_JSON and chat.response_format.type != "text":
        choices = tuple(
            replace(choice, deltas=choice.deltas[:-1], finish_reason="length")
            for choice in completion.choices
        )
        completion = replace(completion, choices=choices)
    identity = AnswerIdentity.new(chat.model)
    pace = Pace.of(model, config)
    if chat.stream:
        events = stream_events(completion, identity, include_usage=chat.include_usage)
        return ScriptedResponse(partial(deliver_stream, events=events, pace=pace, fault=fault, config=config))
    body = orjson.dumps(completion_body(completion, identity))
    wait = pace.first_token + pace.per_token * completion.completion_tokens
    return ScriptedResponse(partial(deliver_json, body=body, wait=wait, fault=fault, config=config))


def planted_content(chat: ChatRequest, planted: Mapping[str, str]) -> str | None:
    contents = [message.content for message in chat.messages]
    return next((answer for text, answer in planted.items() if any(text in c for c in contents)), None)


def planted_choice(content: str) -> Choice:
    pieces = content.split(" ")
    return Choice(tuple(piece if number == 0 else " " + piece for number, piece in enumerate(pieces)), "stop")


def answer_embeddings(
    request: EmbeddingsRequest, model: SimulatedModel, fault: Fault | None, config: SimulatorConfig
) -> Response:
    body = orjson.dumps(embeddings_body(request))
    return ScriptedResponse(partial(deliver_json, body=body, wait=0.0, fault=fault, config=config))


async def chat_completions(request: Request) -> Response:
    answer = partial(answer_chat, planted=simulator_of(request).planted)
    return await call_model(request, parse_chat_request, answer)


async def embeddings(request: Request) -> Response:
    return await call_model(request, parse_embeddings_request, answer_embeddings)


async def list_models(request: Request) -> Response:
    return json_response({"object": "list", "data": [model_body(model) for model in MODELS.values()]})


async def simulator_stats(request: Request) -> Response:
    return json_response(simulator_of(request).stats())


async def simulator_reset(request: Request) -> Response:
    simulator_of(request).reset()
    return json_response({"reset": True})


async def simulator_plant(request: Request) -> Response:
    try:
        body = await json_body(request)
        when_contains = required_field(body, "when_contains", str)
        content = required_field(body, "content", str)
    except RequestError as error:
        return error.response()
    simulator_of(request).planted[when_contains] = content
    return json_response({"planted": True})


PACE_FIELDS = ("latency_ms", "ttft_ms", "tokens_per_second")


async def simulator_pace(request: Request) -> Response:
    simulator = simulator_of(request)
    try:
        body = await json_body(request)
        simulator.config = replace(simulator.config, **pace_changes(body))
    except RequestError as error:
        return error.response()
    except ValueError as error:
        return invalid(None, str(error)).response()
    return json_response({name: getattr(simulator.config, name) for name in PACE_FIELDS})


def pace_changes(body: Mapping[str, object]) -> dict[str, float]:
    changes = {}
    for name in PACE_FIELDS:
        value = body.get(name)
        if name not in body:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid(name, f"'{name}' must be a number.", "invalid_type")
        changes[name] = float(value)
    return changes


def known_model(model_id: str) -> SimulatedModel:
    if model_id not in MODELS:
        message = f"The model `{model_id}` does not exist or you do not have access to it."
        raise RequestError(ApiError(404, message, "invalid_request_error", "model_not_found", "model"))
    return MODELS[model_id]


async def json_body(request: Request) -> Mapping[str, object]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise invalid(None, "We could not parse the JSON body of your request.", "invalid_json") from None
    if not isinstance(body, dict):
        raise invalid(None, "The request body must be a JSON object.", "invalid_type")
    return body


def simulator_of(request: Request) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = f"Unknown request URL: {request.method} {request.url.path}."
    code = "unknown_url" if error.status_code == 404 else "method_not_allowed"
    return ApiError(error.status_code, message, "invalid_request_error", code).response()


async def server_error(request: Request, error: Exception) -> Response:
    # Starlette sends this outside the middleware stack, so it carries the label itself.
    response = ApiError(500, "The simulator failed.", "server_error", "server_error").response()
    response.headers[SIMULATED_HEADER[0].decode()] = SIMULATED_HEADER[1].decode()
    return response


class SimulatedLabel:
    """Marks every response `x-simulated-provider: 1`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_labelled(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), SIMULATED_HEADER]
            await send(message)

        await self.app(scope, receive, send_labelled)


def create_app(config: SimulatorConfig) -> Starlette:
    """The simulated provider's ASGI app (serve it with build_server() for the connection faults)."""
    app = Starlette(
        routes=[
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/_sim/stats", simulator_stats, methods=["GET"]),
            Route("/_sim/reset", simulator_reset, methods=["POST"]),
            Route("/_sim/answers", simulator_plant, methods=["POST"]),
            Route("/_sim/pace", simulator_pace, methods=["POST"]),
        ],
        middleware=[Middleware(SimulatedLabel)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.simulator = Simulator(config)
    return app


# Serving


class ConnectionControlProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol that also hands each request its connection's controls.

    scope["extensions"][CONNECTION_EXTENSION] = {"close": ..., "reset": ...}: "close"
    ends the connection after what was written (FIN), "reset" aborts it (RST).
    """

    def on_message_begin(self) -> None:
        super().on_message_begin()
        controls: dict[object, object] = {"close": self.transport.close, "reset": self.reset_connection}
        self.scope["extensions"] = {CONNECTION_EXTENSION: controls}

    def reset_connection(self) -> None:
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns the close into an RST, as when a peer crashes or a middlebox drops the flow.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


def build_server(config: SimulatorConfig, *, host: str, port: int) -> uvicorn.Server:
    """A one-process uvicorn server for the simulator: warnings only, no access log."""
    return uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=host,
            port=port,
            http=ConnectionControlProtocol,
            lifespan="off",
            log_level="warning",
            access_log=False,
            # A stalled fault must not hold a shutdown for minutes.
            timeout_graceful_shutdown=2,
        )
    )
