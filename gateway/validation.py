"""Validating /v1 request bodies into what the gateway needs, with OpenAI's errors.

Fields the gateway does not interpret (temperature, tools, seed, ...) pass
through to the provider unchanged; the ones it relies on are checked here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import invalid

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
DEFAULT_MAX_OUTPUT_TOKENS = 256
MAX_OUTPUT_TOKENS_LIMIT = 1_000_000
CHARACTERS_PER_TOKEN = 4


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("The request body is not valid JSON.", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None, "invalid_json")
    return body


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
    """A local estimate (no tokenizer download): ~4 characters a token, plus framing per message."""
    return len(text) // CHARACTERS_PER_TOKEN + 1 + 4 * messages


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
    max_output_tokens: int
    estimated_prompt_tokens: int


def parse_chat_request(raw: bytes) -> ChatRequest:
    return validate_chat(parse_json_object(raw))


def validate_chat(body: dict[str, Any]) -> ChatRequest:
    """A chat completion request body checked and typed (in-process callers start here)."""
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
    optional_int(body, "n", 1, 1)
    return ChatRequest(
        body=body,
        model=model,
        stream=stream,
        include_usage=include_usage,
        needs_json=needs_json(body),
        max_output_tokens=max_completion_tokens or max_tokens or DEFAULT_MAX_OUTPUT_TOKENS,
        estimated_prompt_tokens=estimate_tokens(text, len(body["messages"])),
    )


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    body: dict[str, Any]
    model: str
    estimated_prompt_tokens: int


def parse_embeddings_request(raw: bytes) -> EmbeddingsRequest:
    return validate_embeddings(parse_json_object(raw))


def validate_embeddings(body: dict[str, Any]) -> EmbeddingsRequest:
    """An embeddings request body checked and typed (in-process callers start here)."""
    model = required_string(body, "model")
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or len(inputs) > 2048:
        raise invalid(
            "`input` must be a string or an array of 1 to 2048 strings.",
            "input",
            "missing_required_parameter" if value is None else "invalid_type",
        )
    for index, item in enumerate(inputs):
        if not isinstance(item, str) or not item:
            raise invalid("Each input must be a non-empty string.", f"input[{index}]", "invalid_type")
        check_no_nul(item, f"input[{index}]")
    optional_int(body, "dimensions", 1, 3072)
    return EmbeddingsRequest(
        body=body, model=model, estimated_prompt_tokens=estimate_tokens(" ".join(inputs))
    )
