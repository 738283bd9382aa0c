"""Anthropic's Messages API mapped onto the chat service: a Messages request
becomes the OpenAI chat body every transport runs (`to_chat_body`), and the
answer, its stream and its errors go back as Anthropic shapes them.

What is mapped, dropped or refused, field by field, is docs/anthropic.md; a
field this module does not know is refused, as Anthropic refuses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.errors import GatewayError, invalid

ROLES = frozenset({"user", "assistant"})
# Accepted and not sent on: OpenAI-compatible providers have no such parameter.
DROPPED_FIELDS = frozenset({"top_k", "service_tier"})
FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "thinking",
        *DROPPED_FIELDS,
    }
)
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def refuse(message: str, param: str | None = None) -> GatewayError:
    return invalid(f"{param}: {message}" if param else message, param)


# What POST /v1/messages/count_tokens reads: a Messages request without its output settings.
COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})


def countable(body: dict[str, Any]) -> dict[str, Any]:
    """A count_tokens body as the Messages request it counts, or a 400 naming a field
    count_tokens does not take (`max_tokens` among them, as Anthropic answers)."""
    unknown = sorted(set(body) - COUNT_FIELDS)
    if unknown:
        raise refuse("Extra inputs are not permitted.", unknown[0])
    return {**body, "max_tokens": 1}


def to_chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI chat completion body that asks what the Messages request `body`
    asks, or a 400 naming the first field that cannot be served."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise refuse("Extra inputs are not permitted.", unknown[0])
    chat: dict[str, Any] = {
        "model": required(body, "model", str),
        "max_tokens": max_tokens(body),
        "messages": [*system_messages(body.get("system")), *conversation(body.get("messages"))],
    }
    chat.update(sampling(body))
    chat.update(tools(body.get("tools"), body.get("tool_choice")))
    refuse_thinking(body.get("thinking"))
    return chat


def required(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        raise refuse("Field required.", name)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise refuse(f"Input should be a valid {kind.__name__}.", name)
    return value


def max_tokens(body: dict[str, Any]) -> int:
    value = required(body, "max_tokens", int)
    if value < 1:
        raise refuse("Input should be greater than or equal to 1.", "max_tokens")
    return int(value)


def system_messages(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    text = system if isinstance(system, str) else text_of(system, "system")
    return [{"role": "system", "content": text}] if text else []


def text_of(blocks: Any, param: str) -> str:
    """The text of a list of text blocks (system prompts, tool results)."""
    if not isinstance(blocks, list):
        raise refuse("Input should be a string or a list of text blocks.", param)
    texts = []
    for index, block in enumerate(blocks):
        texts.append(text_block(block, f"{param}.{index}"))
    return "\n".join(texts)


def text_block(block: Any, param: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise refuse("Only text blocks are accepted here.", param)
    text = block.get("text")
    if not isinstance(text, str):
        raise refuse("Input should be a valid string.", f"{param}.text")
    return text


def conversation(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise refuse("Field required.", "messages")
    if not isinstance(messages, list) or not messages:
        raise refuse("Input should be a non-empty list of messages.", "messages")
    chat: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        param = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise refuse("Each message needs a `role` of user or assistant.", param)
        unknown = sorted(set(message) - {"role", "content"})
        if unknown:
            raise refuse("Extra inputs are not permitted.", f"{param}.{unknown[0]}")
        blocks = content_blocks(message.get("content"), f"{param}.content")
        if message["role"] == "user":
            chat += user_messages(blocks, f"{param}.content")
        else:
            chat.append(assistant_message(blocks, f"{param}.content"))
    return chat


def content_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise refuse("Input should be a string or a non-empty list of content blocks.", param)
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise refuse("Each content block must be an object with a `type`.", f"{param}.{index}")
    return content


def user_messages(blocks: list[dict[str, Any]], param: str) -> list[dict[str, Any]]:
    """A user turn: its tool results as OpenAI tool messages, then the rest as one
    user message (Anthropic puts tool results first in a turn)."""
    results, parts = [], []
    for index, block in enumerate(blocks):
        where = f"{param}.{index}"
        kind = block["type"]
        if kind == "tool_result":
            results.append(tool_message(block, where))
        elif kind == "text":
            parts.append({"type": "text", "text": text_block(block, where)})
        elif kind == "image":
            parts.append(image_part(block, where))
        else:
            raise unsupported_block(kind, where)
    if not parts:
        return results
    if all(part["type"] == "text" for part in parts):
        return [*results, {"role": "user", "content": "\n".join(part["text"] for part in parts)}]
    return [*results, {"role": "user", "content": parts}]


def unsupported_block(kind: str, param: str) -> GatewayError:
    return refuse(f"Content blocks of type `{kind}` are not supported by this gateway.", param)


def tool_message(block: dict[str, Any], param: str) -> dict[str, Any]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise refuse("Field required.", f"{param}.tool_use_id")
    content = block.get("content", "")
    text = content if isinstance(content, str) else text_of(content, f"{param}.content")
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def image_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if isinstance(media_type, str) and isinstance(data, str):
            return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise refuse("An image needs a base64 source (media_type, data) or a url source.", f"{param}.source")


def assistant_message(blocks: list[dict[str, Any]], param: str) -> dict[str, Any]:
    texts, calls = [], []
    for index, block in enumerate(blocks):
        where = f"{param}.{index}"
        if block["type"] == "text":
            texts.append(text_block(block, where))
        elif block["type"] == "tool_use":
            calls.append(tool_call(block, where))
        else:
            raise unsupported_block(block["type"], where)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def tool_call(block: dict[str, Any], param: str) -> dict[str, Any]:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not call_id:
        raise refuse("Field required.", f"{param}.id")
    if not isinstance(name, str) or not name:
        raise refuse("Field required.", f"{param}.name")
    if not isinstance(arguments, dict):
        raise refuse("Input should be an object.", f"{param}.input")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
    }


def sampling(body: dict[str, Any]) -> dict[str, Any]:
    chat: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise refuse("Input should be a number from 0 to 1.", name)
            chat[name] = value
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise refuse("Input should be a non-negative integer.", "top_k")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(stop, str) and stop for stop in stops):
            raise refuse("Input should be a list of non-empty strings.", "stop_sequences")
        if stops:
            chat["stop"] = stops
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            raise refuse("Input should be a valid boolean.", "stream")
        chat["stream"] = stream
    chat.update(metadata(body.get("metadata")))
    return chat


def metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - {"user_id"}:
        raise refuse("Input should be an object with only `user_id`.", "metadata")
    user_id = value.get("user_id")
    if user_id is None:
        return {}
    if not isinstance(user_id, str):
        raise refuse("Input should be a valid string.", "metadata.user_id")
    return {"user": user_id}


def tools(definitions: Any, choice: Any) -> dict[str, Any]:
    chat: dict[str, Any] = {}
    if definitions is not None:
        if not isinstance(definitions, list):
            raise refuse("Input should be a list of tools.", "tools")
        if definitions:
            chat["tools"] = [function_tool(tool, f"tools.{index}") for index, tool in enumerate(definitions)]
    if choice is not None:
        chat.update(tool_choice(choice, "tools" in chat))
    return chat


def function_tool(tool: Any, param: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise refuse("Input should be an object.", param)
    if tool.get("type", "custom") != "custom":
        raise refuse(f"Server tools (`{tool['type']}`) are not supported by this gateway.", f"{param}.type")
    name, description, schema = tool.get("name"), tool.get("description"), tool.get("input_schema")
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        raise refuse("A tool name is 1 to 64 letters, digits, underscores or hyphens.", f"{param}.name")
    if description is not None and not isinstance(description, str):
        raise refuse("Input should be a valid string.", f"{param}.description")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise refuse("Input should be a JSON Schema of type object.", f"{param}.input_schema")
    function = {"name": name, "parameters": schema}
    if description:
        function["description"] = description
    return {"type": "function", "function": function}


def tool_choice(choice: Any, has_tools: bool) -> dict[str, Any]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in {"auto", "any", "tool", "none"}:
        raise refuse("Input should be an object whose `type` is auto, any, tool or none.", "tool_choice")
    if kind == "none" or not has_tools:
        if kind in {"any", "tool"}:
            raise refuse(f"tool_choice `{kind}` needs `tools`.", "tool_choice")
        return {"tool_choice": "none"} if has_tools else {}
    chat: dict[str, Any] = {"tool_choice": {"auto": "auto", "any": "required"}.get(kind)}
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise refuse("Field required.", "tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    disable_parallel = choice.get("disable_parallel_tool_use")
    if disable_parallel is not None and not isinstance(disable_parallel, bool):
        raise refuse("Input should be a valid boolean.", "tool_choice.disable_parallel_tool_use")
    if disable_parallel:
        chat["parallel_tool_calls"] = False
    return chat


def refuse_thinking(thinking: Any) -> None:
    if thinking is None or (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        return
    raise refuse("Extended thinking is not supported by this gateway.", "thinking")


# The answer


def message_id(request_id: str) -> str:
    return f"msg_{request_id.removeprefix('req_')}"


def usage_of(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage as Anthropic's: cached prompt tokens are reads, not input."""
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def stop_reason(finish_reason: str | None) -> str:
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def message_from_completion(data: dict[str, Any], message: str, model: str) -> dict[str, Any]:
    """A chat completion as the Message with id `message`."""
    choice = (data.get("choices") or [{}])[0]
    answer = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if answer.get("content"):
        content.append({"type": "text", "text": answer["content"]})
    content += [tool_use_block(call) for call in answer.get("tool_calls") or []]
    return {
        "id": message,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": usage_of(data.get("usage") or {}),
    }


def tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": tool_input(function),
    }


def tool_input(function: dict[str, Any]) -> Any:
    try:
        return orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        raise GatewayError(
            502,
            f"The model provider failed: the arguments of `{function.get('name')}` are not JSON.",
            "upstream_error",
            "upstream_bad_response",
        ) from None


def error_body(error: GatewayError, request_id: str) -> dict[str, Any]:
    """A gateway error as Anthropic's error object (its type from the status)."""
    default = "api_error" if error.status >= 500 else "invalid_request_error"
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(error.status, default), "message": error.message},
        "request_id": request_id,
    }


# Models: GET /v1/models as Anthropic's SDK reads it

# Anthropic's `created_at`, the moment of OpenAI's `created` the registry gives every model.
MODEL_CREATED_AT = datetime.fromtimestamp(1_700_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
MODELS_PAGE_DEFAULT, MODELS_PAGE_MOST = 20, 1000


def model_info(model_id: str, context_window: int | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": MODEL_CREATED_AT,
    }
    if context_window is not None:
        info["max_input_tokens"] = context_window
    return info


def models_page(models: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """A page of `models` as Anthropic's list answers it: `limit` (1 to 1,000,
    default 20) models after `after_id` or before `before_id`; an id not in the
    list is a 400 naming its parameter."""
    limit_text = query.get("limit", str(MODELS_PAGE_DEFAULT))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MODELS_PAGE_MOST:
        raise refuse(f"must be an integer from 1 to {MODELS_PAGE_MOST}.", "limit")
    limit, ids = int(limit_text), [model["id"] for model in models]
    start, end = 0, len(models)
    for param in ("after_id", "before_id"):
        if param in query and query[param] not in ids:
            raise refuse(f"no model {query[param]!r} in the list.", param)
    if "before_id" in query:
        end = ids.index(query["before_id"])
        start = max(0, end - limit)
    elif "after_id" in query:
        start = ids.index(query["after_id"]) + 1
    page = models[start : min(end, start + limit)]
    more = start > 0 if "before_id" in query else start + limit < end
    return {
        "data": page,
        "has_more": more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


# The stream


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


@dataclass
class MessageEvents:
    """A chat stream's deltas as Messages events: text and tool calls become
    content blocks in the order they arrive, one open at a time."""

    message: str
    blocks: int = 0
    open_kind: str | None = None
    # OpenAI's tool-call index -> our content block index.
    tool_blocks: dict[int, int] = field(default_factory=dict)

    def start(self, model: str, input_tokens: int) -> bytes:
        message: dict[str, Any] = {
            "id": self.message,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        }
        return event("message_start", {"message": message}) + event("ping", {})

    def delta(self, delta: dict[str, Any]) -> bytes:
        out = b""
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.open_kind != "text":
                out += self.open({"type": "text", "text": ""})
            out += event(
                "content_block_delta",
                {"index": self.blocks - 1, "delta": {"type": "text_delta", "text": text}},
            )
        for call in delta.get("tool_calls") or []:
            out += self.tool_call_delta(call)
        return out

    def tool_call_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        function = call.get("function") or {}
        index = int(call.get("index") or 0)
        if index not in self.tool_blocks:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": {},
            }
            out += self.open(block)
            self.tool_blocks[index] = self.blocks - 1
        arguments = function.get("arguments")
        if arguments:
            partial = {"type": "input_json_delta", "partial_json": arguments}
            out += event("content_block_delta", {"index": self.tool_blocks[index], "delta": partial})
        return out

    def open(self, block: dict[str, Any]) -> bytes:
        out = self.close()
        out += event("content_block_start", {"index": self.blocks, "content_block": block})
        self.blocks += 1
        self.open_kind = block["type"]
        return out

    def close(self) -> bytes:
        if self.open_kind is None:
            return b""
        self.open_kind = None
        return event("content_block_stop", {"index": self.blocks - 1})

    def finish(self, finish_reason: str, usage: dict[str, Any]) -> bytes:
        delta = {"stop_reason": stop_reason(finish_reason), "stop_sequence": None}
        return (
            self.close()
            + event("message_delta", {"delta": delta, "usage": usage_of(usage)})
            + event("message_stop", {})
        )


def error_event(error: GatewayError, request_id: str) -> bytes:
    body = error_body(error, request_id)
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
