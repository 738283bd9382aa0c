"""Validating /v1 request bodies into what the gateway needs, with OpenAI's errors.

Fields the gateway does not interpret (temperature, tools, seed, ...) pass
through to the provider unchanged; the ones it relies on are checked here. A
top-level field OpenAI does not define is refused as OpenAI refuses it (400
"Unrecognized request argument supplied: x"), so a typo is not silently lost
(docs/compatibility.md lists the fields).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from gateway.errors import invalid

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_OUTPUT_TOKENS_LIMIT = 1_000_000
CHARACTERS_PER_TOKEN = 4
# What a provider turns into prompt tokens: the conversation, tools and schemas.
PROMPT_FIELDS = ("messages", "tools", "functions", "tool_choice", "response_format")
# Framing tokens a chat template adds around each message (OpenAI's is 3-4).
MESSAGE_FRAMING_TOKENS = 8
# Tokens an image or audio part may cost: above OpenAI's largest image (1,105 at
# high detail) with margin; parts are bounded, never measured.
MEDIA_PART_TOKENS = 2_000
MEDIA_PART_TYPES = frozenset({"image_url", "input_image", "input_audio", "file"})
MAX_CHOICES = 128
MAX_EMBEDDING_INPUTS = 2048
MAX_TOKEN_ID = 2**31 - 1  # beyond any tokenizer's vocabulary, and within what JSON encoders carry
# OpenAI's chat completion request fields (docs/compatibility.md).
CHAT_FIELDS = frozenset(
    {
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
        "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty",
        "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
        "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
        "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p",
        "user", "verbosity", "web_search_options",
    }
)  # fmt: skip
EMBEDDINGS_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("The request body is not valid JSON.", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None, "invalid_json")
    return body


def check_known_fields(body: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(name for name in body if name not in known)
    if unknown:
        raise invalid(
            f"Unrecognized request argument supplied: {', '.join(unknown)}",
            unknown[0],
            "unrecognized_request_argument",
        )


def check_no_nul(value: str, param: str) -> str:
    if "\x00" in value:
        raise invalid(f"{param} must not contain NUL characters.", param)
    return value


def required_string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid(
            f"`{name}` is required and must be a non-empty string.",
            name,
            "missing_required_parameter" if value is None else "invalid_type",
        )
    return check_no_nul(value, name)


def optional_int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"`{name}` must be an integer from {low} to {high}.", name, "invalid_type")
    return int(value)


def optional_bool(
    body: dict[str, Any], name: str, param: str | None = None, *, nullable: bool = True
) -> bool:
    value = body.get(name, False)
    if value is None and nullable:
        return False
    if not isinstance(value, bool):
        raise invalid(f"`{param or name}` must be a boolean.", param or name, "invalid_type")
    return value


def content_text(content: Any, param: str) -> str:
    """The text of a message's content (a string or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return check_no_nul(content, param)
    if isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise invalid(
                    "Each content part must be an object with a `type`.", f"{param}[{index}]", "invalid_type"
                )
            text = part.get("text")
            if "text" in part and not isinstance(text, str):
                raise invalid("A part's `text` must be a string.", f"{param}[{index}].text", "invalid_type")
            if isinstance(text, str):
                parts.append(check_no_nul(text, f"{param}[{index}].text"))
        return " ".join(parts)
    raise invalid("`content` must be a string, a list of parts or null.", param, "invalid_type")


def prompt_text(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise invalid(
            "`messages` must be a non-empty array.",
            "messages",
            "missing_required_parameter" if messages is None else "invalid_type",
        )
    texts = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid("Each message must be an object.", param, "invalid_type")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise invalid(f"`role` must be one of {', '.join(sorted(ROLES))}.", f"{param}.role")
        texts.append(content_text(message.get("content"), f"{param}.content"))
    return "\n".join(texts)


def estimate_tokens(text: str, messages: int = 0) -> int:
    """A local estimate (no tokenizer download): ~4 characters a token, plus framing
    per message. What is billed when a provider sends no usage; never a bound."""
    return len(text) // CHARACTERS_PER_TOKEN + 1 + 4 * messages


def input_tokens_estimate(chat: ChatRequest) -> int:
    """What the token-counting endpoints answer (/v1/messages/count_tokens,
    /v1/responses/input_tokens): the prompt's estimate, plus the tools' definitions
    estimated from their JSON. No model is asked."""
    tools = chat.body.get("tools")
    return chat.estimated_prompt_tokens + (estimate_tokens(orjson.dumps(tools).decode()) if tools else 0)


def prompt_tokens_bound(body: dict[str, Any]) -> int:
    """An upper bound on the prompt tokens of `body` for any byte-level tokenizer
    (every BPE model's, any script, CJK included): a token is at least one UTF-8
    byte of what the provider renders, so the bytes of the conversation, tools
    and schemas as JSON, plus framing per message and a fixed bound per media
    part. What reservations are made of (budgets are upper bounds, ADR 0006)."""
    messages = body.get("messages")
    rendered = orjson.dumps([body.get(name) for name in PROMPT_FIELDS])
    count = len(messages) if isinstance(messages, list) else 0
    return len(rendered) + MESSAGE_FRAMING_TOKENS * count + MEDIA_PART_TOKENS * media_parts(messages)


def embeddings_tokens_bound(body: dict[str, Any]) -> int:
    """An upper bound on an embeddings request's tokens: the inputs' UTF-8 bytes,
    and a token array's length (its tokens are counted, not bounded)."""
    return sum(
        len(item.encode()) + 1 if isinstance(item, str) else len(item)
        for item in embedding_inputs(body.get("input"))
    )


def embedding_inputs(value: Any) -> list[Any]:
    """`input` as a list of inputs: a string or a token array is one input."""
    if isinstance(value, str) or is_token_array(value):
        return [value]
    return value if isinstance(value, list) else []


def is_token_array(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(token, int) and not isinstance(token, bool) and 0 <= token <= MAX_TOKEN_ID
            for token in value
        )
    )


def media_parts(messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(
        1
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") in MEDIA_PART_TYPES
    )


def output_tokens_limit(body: dict[str, Any]) -> int | None:
    """The request's own limit on output tokens (`max_completion_tokens` wins)."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def output_tokens_bound(body: dict[str, Any]) -> int:
    """What a request may produce: its output limit for each of its `n` choices."""
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    return (output_tokens_limit(body) or 0) * choices


def needs_json(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format")
    if response_format is None:
        return False
    format_type = response_format.get("type") if isinstance(response_format, dict) else None
    if not isinstance(format_type, str) or format_type not in {
        "text",
        "json_object",
        "json_schema",
    }:
        raise invalid(
            "`response_format.type` must be text, json_object or json_schema.", "response_format.type"
        )
    return bool(response_format["type"] != "text")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat completion request. `body` is the client's JSON, passed on
    to the provider (fields the gateway does not read travel unchanged)."""

    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool
    needs_json: bool
    # The client's limit on output tokens of each choice; the gateway sends the plan's default when None.
    max_output_tokens: int | None
    estimated_prompt_tokens: int
    prompt_tokens_bound: int
    choices: int = 1  # `n`

    def with_output_limit(self, default: int) -> ChatRequest:
        """This request with a limit on output tokens always sent upstream, so the
        provider cannot produce more than was reserved."""
        if self.max_output_tokens is not None:
            return self
        return replace(self, body={**self.body, "max_tokens": default}, max_output_tokens=default)

    def with_output_cap(self, cap: int) -> ChatRequest:
        """This request with its output limit lowered to `cap`, under whichever
        name(s) the client used."""
        names = [name for name in ("max_completion_tokens", "max_tokens") if name in self.body] or [
            "max_tokens"
        ]
        return replace(self, body={**self.body, **dict.fromkeys(names, cap)}, max_output_tokens=cap)


def parse_chat_request(raw: bytes) -> ChatRequest:
    return validate_chat(parse_json_object(raw))


def validate_chat(body: dict[str, Any]) -> ChatRequest:
    """A chat completion request body checked and typed (in-process callers start here)."""
    check_known_fields(body, CHAT_FIELDS)
    model = required_string(body, "model")
    text = prompt_text(body.get("messages"))
    # Both are checked: the newer name wins, but an invalid older one is still an error.
    max_completion_tokens = optional_int(body, "max_completion_tokens", 1, MAX_OUTPUT_TOKENS_LIMIT)
    max_tokens = optional_int(body, "max_tokens", 1, MAX_OUTPUT_TOKENS_LIMIT)
    stream = optional_bool(body, "stream")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise invalid("`stream_options` must be an object.", "stream_options", "invalid_type")
    include_usage = optional_bool(
        stream_options or {}, "include_usage", "stream_options.include_usage", nullable=False
    )
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise invalid("`user` must be a string.", "user", "invalid_type")
    choices = optional_int(body, "n", 1, MAX_CHOICES) or 1
    optional_bool(body, "logprobs")
    optional_int(body, "top_logprobs", 0, 20)
    return ChatRequest(
        body=body,
        model=model,
        stream=stream,
        include_usage=include_usage,
        needs_json=needs_json(body),
        max_output_tokens=max_completion_tokens or max_tokens,
        estimated_prompt_tokens=estimate_tokens(text, len(body["messages"])),
        prompt_tokens_bound=prompt_tokens_bound(body),
        choices=choices,
    )


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    body: dict[str, Any]
    model: str
    estimated_prompt_tokens: int
    prompt_tokens_bound: int
    token_input: bool


def parse_embeddings_request(raw: bytes) -> EmbeddingsRequest:
    return validate_embeddings(parse_json_object(raw))


def validate_embeddings(body: dict[str, Any]) -> EmbeddingsRequest:
    """An embeddings request body checked and typed (in-process callers start here)."""
    check_known_fields(body, EMBEDDINGS_FIELDS)
    model = required_string(body, "model")
    value = body.get("input")
    inputs = embedding_inputs(value)
    if not inputs or len(inputs) > MAX_EMBEDDING_INPUTS:
        raise invalid(
            "`input` must be a string, a token array, or an array of 1 to 2048 strings or token arrays.",
            "input",
            "missing_required_parameter" if value is None else "invalid_type",
        )
    for index, item in enumerate(inputs):
        if is_token_array(item):
            continue
        if not isinstance(item, str) or not item:
            raise invalid(
                "Each input must be a non-empty string or an array of token ids.",
                f"input[{index}]",
                "invalid_type",
            )
        check_no_nul(item, f"input[{index}]")
    optional_int(body, "dimensions", 1, 3072)
    encoding_format = body.get("encoding_format")
    if encoding_format is not None and encoding_format not in ("float", "base64"):
        raise invalid("`encoding_format` must be float or base64.", "encoding_format")
    return EmbeddingsRequest(
        body=body,
        model=model,
        estimated_prompt_tokens=sum(
            len(item) if is_token_array(item) else estimate_tokens(item) for item in inputs
        ),
        prompt_tokens_bound=embeddings_tokens_bound(body),
        token_input=any(is_token_array(item) for item in inputs),
    )
