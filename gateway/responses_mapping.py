"""OpenAI's Responses API mapped onto the chat service: a create request becomes
typed items and the chat completion body every transport runs (`to_chat_body`),
and the answer and its stream go back as Response objects and events.

Items are kept in the Responses shape (with ids), so a stored conversation is
what `input_items` lists and what a later `previous_response_id` prepends.
What is mapped or refused, field by field, is docs/compatibility.md.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from gateway.errors import GatewayError, invalid
from gateway.validation import check_known_fields, check_no_nul, optional_int, required_string
from routing.models import ROUTED_MODEL

MESSAGE_ROLES = frozenset({"user", "assistant", "system", "developer"})
# OpenAI's own minimum for max_output_tokens.
MIN_OUTPUT_TOKENS = 16
MAX_OUTPUT_TOKENS = 1_000_000
METADATA_PAIRS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512
# Create-request fields served; any other is refused (OpenAI's other fields by name).
FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "max_output_tokens", "temperature", "top_p", "text", "metadata", "store",
        "previous_response_id", "stream", "user", "reasoning",
    }
)  # fmt: skip
UNSUPPORTED_FIELDS = frozenset(
    {
        "background", "conversation", "include", "max_tool_calls", "prompt", "prompt_cache_key",
        "prompt_cache_retention", "safety_identifier", "service_tier", "stream_options",
        "top_logprobs", "truncation", "context_management", "moderation", "image",
        "access_programs", "background_options", "prompt_cache_options",
    }
)  # fmt: skip
REASONING_EFFORTS = frozenset({"minimal", "low", "medium", "high"})
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
# A failure's `error.code` as OpenAI's Response object names it, by HTTP status.
FAILURE_CODES = {429: "rate_limit_exceeded", 400: "invalid_prompt"}

Item = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def response_id(request_id: str) -> str:
    return f"resp_{request_id.removeprefix('req_')}"


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A validated create request: its new input as items, and what the Response echoes."""

    body: dict[str, Any]
    model: str
    input_items: list[Item]
    instructions: str | None
    previous_response_id: str | None
    store: bool
    stream: bool
    chat_options: dict[str, Any]


def parse_create(body: dict[str, Any]) -> ResponsesRequest:
    """The create request `body` checked and typed, or a 400 naming the first bad field."""
    refuse_unknown(body)
    previous = optional_string(body, "previous_response_id")
    store, stream = flag(body, "store", default=True), flag(body, "stream", default=False)
    return ResponsesRequest(
        body=body,
        model=required_string(body, "model"),
        input_items=input_items(body.get("input")),
        instructions=optional_string(body, "instructions"),
        previous_response_id=previous,
        store=store,
        stream=stream,
        chat_options=chat_options(body),
    )


# What POST /v1/responses/input_tokens reads: a create request without its output settings.
COUNT_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
        "previous_response_id", "reasoning",
    }
)  # fmt: skip


def parse_count(body: dict[str, Any]) -> ResponsesRequest:
    """An input token count's `body` as the create request it counts (`model` is
    optional, as OpenAI's: `auto`), or a 400 naming a field a count does not take."""
    refuse_unknown(body)
    output_settings = sorted(set(body) - COUNT_FIELDS)
    if output_settings:
        name = output_settings[0]
        raise invalid(f"`{name}` is not a field of an input token count.", name, "unknown_parameter")
    return parse_create({"model": ROUTED_MODEL, **body, "store": False})


def refuse_unknown(body: dict[str, Any]) -> None:
    unsupported = sorted(set(body) & UNSUPPORTED_FIELDS)
    if unsupported:
        raise invalid(
            f"`{unsupported[0]}` is not supported by this gateway.", unsupported[0], "unsupported_parameter"
        )
    check_known_fields(body, FIELDS)


def one_of(value: Any, options: frozenset[str] | set[str]) -> bool:
    """Whether `value` is one of the strings `options` (a JSON object or array is not)."""
    return isinstance(value, str) and value in options


def optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"`{name}` must be a string.", name, "invalid_type")
    return check_no_nul(value, name)


def flag(body: dict[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"`{name}` must be a boolean.", name, "invalid_type")
    return value


def number(body: dict[str, Any], name: str, high: float) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
        raise invalid(f"`{name}` must be a number from 0 to {high:g}.", name, "invalid_type")
    return {name: value}


# The input


def input_items(value: Any) -> list[Item]:
    """`input` as Responses items with ids: a string is one user message."""
    if isinstance(value, str) and value:
        return [message_item("user", [input_text(check_no_nul(value, "input"))])]
    if not isinstance(value, list) or not value:
        raise invalid(
            "`input` must be a non-empty string or a non-empty array of input items.",
            "input",
            "missing_required_parameter" if value is None else "invalid_type",
        )
    return [input_item(item, f"input[{index}]") for index, item in enumerate(value)]


def input_text(text: str) -> Item:
    return {"type": "input_text", "text": text}


def message_item(role: str, content: list[Item]) -> Item:
    return {"id": new_id("msg"), "type": "message", "role": role, "content": content, "status": "completed"}


def input_item(item: Any, param: str) -> Item:
    if not isinstance(item, dict):
        raise invalid("Each input item must be an object.", param, "invalid_type")
    kind = item.get("type", "message")
    if kind == "message":
        return input_message(item, param)
    if kind == "function_call":
        return function_call_item(item, param)
    if kind == "function_call_output":
        return function_call_output_item(item, param)
    raise invalid(f"Input items of type `{kind}` are not supported by this gateway.", f"{param}.type")


def input_message(item: Item, param: str) -> Item:
    role = item.get("role")
    if not isinstance(role, str) or role not in MESSAGE_ROLES:
        raise invalid("`role` must be one of assistant, developer, system, user.", f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        parts = [input_text(check_no_nul(content, f"{param}.content"))]
    elif isinstance(content, list) and content:
        parts = [content_part(part, f"{param}.content[{index}]") for index, part in enumerate(content)]
    else:
        raise invalid("`content` must be a string or a non-empty array of parts.", f"{param}.content")
    if role == "assistant":
        return message_item(role, [output_text(str(part["text"])) for part in parts])
    return message_item(role, parts)


def content_part(part: Any, param: str) -> Item:
    kind = part.get("type") if isinstance(part, dict) else None
    if one_of(kind, {"input_text", "output_text"}):
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid("A part's `text` must be a string.", f"{param}.text", "invalid_type")
        return input_text(check_no_nul(text, f"{param}.text"))
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return {"type": "input_image", "image_url": part["image_url"], "detail": part.get("detail", "auto")}
    raise invalid("A part must be input_text, output_text or input_image with an image_url.", f"{param}.type")


def function_call_item(item: Item, param: str) -> Item:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    for key, value in (("call_id", call_id), ("name", name), ("arguments", arguments)):
        if not isinstance(value, str) or (key != "arguments" and not value):
            raise invalid(f"`{key}` must be a non-empty string.", f"{param}.{key}", "invalid_type")
    identifier = item.get("id")
    return {
        "id": identifier if isinstance(identifier, str) and identifier else new_id("fc"),
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def function_call_output_item(item: Item, param: str) -> Item:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str) or not call_id:
        raise invalid("`call_id` must be a non-empty string.", f"{param}.call_id", "invalid_type")
    if isinstance(output, list):
        output = " ".join(content_part(part, f"{param}.output").get("text", "") for part in output)
    if not isinstance(output, str):
        raise invalid(
            "`output` must be a string or an array of text parts.", f"{param}.output", "invalid_type"
        )
    return {
        "id": new_id("fco"),
        "type": "function_call_output",
        "call_id": call_id,
        "output": check_no_nul(output, f"{param}.output"),
        "status": "completed",
    }


# The chat completion body


def chat_options(body: dict[str, Any]) -> dict[str, Any]:
    """What the create request asks of the model beyond its messages, as chat parameters."""
    chat: dict[str, Any] = {**number(body, "temperature", 2), **number(body, "top_p", 1)}
    limit = optional_int(body, "max_output_tokens", MIN_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS)
    if limit is not None:
        chat["max_tokens"] = limit
    if body.get("parallel_tool_calls") is not None:
        chat["parallel_tool_calls"] = flag(body, "parallel_tool_calls", default=True)
    user = optional_string(body, "user")
    if user:
        chat["user"] = user
    metadata_of(body.get("metadata"))
    chat.update(reasoning(body.get("reasoning")))
    chat.update(text_format(body.get("text")))
    chat.update(tools(body.get("tools"), body.get("tool_choice")))
    return chat


def metadata_of(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if (
        not isinstance(value, dict)
        or len(value) > METADATA_PAIRS
        or not all(
            isinstance(key, str)
            and len(key) <= METADATA_KEY_CHARS
            and isinstance(item, str)
            and len(item) <= METADATA_VALUE_CHARS
            and "\x00" not in key + item  # the stored turn is JSON in PostgreSQL, which refuses NUL
            for key, item in value.items()
        )
    ):
        raise invalid(
            "`metadata` must be at most 16 string pairs (keys to 64, values to 512 characters; no NUL).",
            "metadata",
        )
    return value


def reasoning(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    effort = value.get("effort") if isinstance(value, dict) else None
    valid_effort = effort is None or one_of(effort, REASONING_EFFORTS)
    if not isinstance(value, dict) or set(value) - {"effort"} or not valid_effort:
        raise invalid("`reasoning` must be {effort: minimal, low, medium or high}.", "reasoning")
    return {"reasoning_effort": effort} if effort else {}


def text_format(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - {"format", "verbosity"}:
        raise invalid("`text` must be an object with `format` (and `verbosity`).", "text")
    chat: dict[str, Any] = {}
    if value.get("verbosity") is not None:
        if not one_of(value["verbosity"], {"low", "medium", "high"}):
            raise invalid("`text.verbosity` must be low, medium or high.", "text.verbosity")
        chat["verbosity"] = value["verbosity"]
    form = value.get("format")
    kind = form.get("type") if isinstance(form, dict) else None
    if form is None or kind == "text":
        return chat
    if kind == "json_object":
        return {**chat, "response_format": {"type": "json_object"}}
    if kind != "json_schema":
        raise invalid("`text.format.type` must be text, json_object or json_schema.", "text.format.type")
    assert isinstance(form, dict)
    name, schema = form.get("name"), form.get("schema")
    if not isinstance(name, str) or not name:
        raise invalid("`text.format.name` must be a non-empty string.", "text.format.name")
    if not isinstance(schema, dict):
        raise invalid("`text.format.schema` must be a JSON Schema object.", "text.format.schema")
    json_schema = {key: form[key] for key in ("name", "schema", "strict", "description") if key in form}
    return {**chat, "response_format": {"type": "json_schema", "json_schema": json_schema}}


def tools(definitions: Any, choice: Any) -> dict[str, Any]:
    chat: dict[str, Any] = {}
    if definitions is not None:
        if not isinstance(definitions, list):
            raise invalid("`tools` must be an array of tools.", "tools", "invalid_type")
        if definitions:
            chat["tools"] = [function_tool(tool, f"tools[{index}]") for index, tool in enumerate(definitions)]
    if choice is not None:
        chat["tool_choice"] = tool_choice(choice)
    return chat


def function_tool(tool: Any, param: str) -> dict[str, Any]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise invalid(
            f"Built-in tools (`{kind}`) are not supported by this gateway; send function tools.",
            f"{param}.type",
            "unsupported_tool",
        )
    assert isinstance(tool, dict)
    name, parameters = tool.get("name"), tool.get("parameters")
    if not isinstance(name, str) or not name:
        raise invalid("`name` must be a non-empty string.", f"{param}.name")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid("`parameters` must be a JSON Schema object.", f"{param}.parameters")
    function = {
        key: tool[key] for key in ("name", "description", "parameters", "strict") if tool.get(key) is not None
    }
    return {"type": "function", "function": function}


def tool_choice(choice: Any) -> Any:
    if one_of(choice, {"auto", "none", "required"}):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise invalid("`tool_choice` must be auto, none, required or {type: function, name}.", "tool_choice")


# The chat fields a Responses request becomes (to_chat_body), and the Responses field
# each comes from: an error the chat service finds names the field the caller sent.
CHAT_PARAMS = (
    ("response_format.json_schema.", "text.format."),
    ("response_format", "text.format"),
    ("max_completion_tokens", "max_output_tokens"),
    ("max_tokens", "max_output_tokens"),
    ("messages", "input"),
)


def in_responses_terms(error: GatewayError) -> GatewayError:
    """`error` of the chat service, its `param` (and the message's mention of it) named
    as the Responses request names it; `messages[3].content` is `input` (the index of
    a chat message is not the caller's: instructions come first, calls are merged)."""
    param = error.param
    for chat, responses in CHAT_PARAMS:
        if param is not None and param.startswith(chat):
            renamed = responses if chat == "messages" else responses + param[len(chat) :]
            message = error.message.replace(f"`{param}`", f"`{renamed}`")
            return replace(error, param=renamed, message=message)
    return error


def to_chat_body(request: ResponsesRequest, earlier: list[Item]) -> dict[str, Any]:
    """The chat completion body for `request` after the `earlier` items of its conversation."""
    messages = [{"role": "system", "content": request.instructions}] if request.instructions else []
    messages += chat_messages([*earlier, *request.input_items])
    return {
        "model": request.model,
        "messages": messages,
        "stream": request.stream,
        **request.chat_options,
    }


def chat_messages(items: list[Item]) -> list[dict[str, Any]]:
    """Items as chat messages: consecutive function calls are one assistant turn."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if item["type"] == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else {}
            if last.get("role") == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif item["type"] == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
        else:
            messages.append(chat_message(item))
    return messages


def chat_message(item: Item) -> dict[str, Any]:
    """A message item; `developer` is sent as `system`, which every provider accepts."""
    role = "system" if item["role"] == "developer" else item["role"]
    parts = item["content"]
    if all(part["type"] != "input_image" for part in parts):
        return {"role": role, "content": "\n".join(part["text"] for part in parts)}
    return {
        "role": role,
        "content": [
            {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part["detail"]}}
            if part["type"] == "input_image"
            else {"type": "text", "text": part["text"]}
            for part in parts
        ],
    }


# The answer


def output_text(text: str) -> Item:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def output_message(text: str, status: str, item_id: str | None = None) -> Item:
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [output_text(text)],
    }


def function_call_output(call: dict[str, Any], item_id: str | None = None) -> Item:
    function = call.get("function") or {}
    return {
        "id": item_id or new_id("fc"),
        "type": "function_call",
        "call_id": call.get("id") or new_id("call"),
        "name": function.get("name") or "",
        "arguments": function.get("arguments") or "",
        "status": "completed",
    }


def output_of_completion(data: dict[str, Any]) -> tuple[list[Item], str | None]:
    """A chat completion's first choice as output items, and its finish reason."""
    choice = (data.get("choices") or [{}])[0]
    answer = choice.get("message") or {}
    finish_reason = choice.get("finish_reason")
    output: list[Item] = []
    if answer.get("content"):
        status = "incomplete" if finish_reason in INCOMPLETE_REASONS else "completed"
        output.append(output_message(answer["content"], status))
    output += [function_call_output(call) for call in answer.get("tool_calls") or []]
    return output, finish_reason


def usage_of(usage: dict[str, Any]) -> dict[str, Any]:
    input_tokens, output_tokens = (
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
    )
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning_tokens = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


def response_object(
    request: ResponsesRequest,
    identifier: str,
    model: str,
    *,
    status: str,
    output: list[Item] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    error: GatewayError | None = None,
    created_at: int | None = None,
) -> dict[str, Any]:
    """The Response object with id `identifier`, as OpenAI shapes it."""
    body = request.body
    options = request.chat_options
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    if status == "completed" and reason:
        status = "incomplete"
    return {
        "id": identifier,
        "object": "response",
        "created_at": created_at or int(time.time()),
        "status": status,
        "background": False,
        "error": failure(error) if error else None,
        "incomplete_details": {"reason": reason} if status == "incomplete" else None,
        "instructions": request.instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": model,
        "output": output or [],
        "parallel_tool_calls": options.get("parallel_tool_calls", True),
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": options.get("reasoning_effort"), "summary": None},
        "store": request.store,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage_of(usage) if usage is not None else None,
        "user": body.get("user"),
    }


def failure(error: GatewayError) -> dict[str, str]:
    code = FAILURE_CODES.get(error.status, "server_error")
    return {"code": code, "message": error.message}


def not_found(identifier: str, param: str | None = None) -> GatewayError:
    if param:
        return invalid(
            f"Previous response with id '{identifier}' not found.", param, "previous_response_not_found"
        )
    return GatewayError(
        404, f"No response found with id '{identifier}'.", "invalid_request_error", "not_found"
    )


def deleted(identifier: str) -> dict[str, Any]:
    return {"id": identifier, "object": "response", "deleted": True}


def item_page(items: list[Item], limit: int, after: str | None) -> dict[str, Any]:
    """A page of `items` (already in the order asked) after the item `after`, as OpenAI lists them."""
    ids = [item["id"] for item in items]
    start = ids.index(after) + 1 if after in ids else 0
    page = items[start : start + limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": start + limit < len(items),
    }


# The stream


@dataclass
class OpenItem:
    """An output item being streamed: a message's text or a function call's arguments."""

    output_index: int
    item: Item
    text: str = ""


@dataclass
class ResponseEvents:
    """A chat stream's deltas as Responses events, each with its sequence number:
    the message text and each tool call are output items, one open at a time."""

    request: ResponsesRequest
    identifier: str
    created_at: int = field(default_factory=lambda: int(time.time()))
    sequence: int = 0
    output: list[Item] = field(default_factory=list)
    open_item: OpenItem | None = None
    # OpenAI's tool-call index -> the call's item.
    calls: dict[int, OpenItem] = field(default_factory=dict)

    def event(self, kind: str, **data: Any) -> bytes:
        payload = orjson.dumps({"type": kind, "sequence_number": self.sequence, **data})
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"

    def snapshot(self, model: str, status: str, **fields: Any) -> dict[str, Any]:
        return response_object(
            self.request, self.identifier, model, status=status, created_at=self.created_at, **fields
        )

    def start(self, model: str) -> bytes:
        response = self.snapshot(model, "in_progress")
        return self.event("response.created", response=response) + self.event(
            "response.in_progress", response=response
        )

    def delta(self, delta: dict[str, Any]) -> bytes:
        out = b""
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.open_item is None or self.open_item.item["type"] != "message":
                out += self.open(output_message("", "in_progress"))
                out += self.event(
                    "response.content_part.added", **self.where(), part=output_text("") | {"logprobs": []}
                )
            assert self.open_item is not None
            self.open_item.text += text
            out += self.event("response.output_text.delta", **self.where(), delta=text, logprobs=[])
        for call in delta.get("tool_calls") or []:
            out += self.call_delta(call)
        return out

    def where(self) -> dict[str, Any]:
        assert self.open_item is not None
        return {
            "item_id": self.open_item.item["id"],
            "output_index": self.open_item.output_index,
            "content_index": 0,
        }

    def call_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = int(call.get("index") or 0)
        if index not in self.calls:
            item = function_call_output(call) | {"arguments": "", "status": "in_progress"}
            out += self.open(item)
            assert self.open_item is not None
            self.calls[index] = self.open_item
        opened = self.calls[index]
        fragment = (call.get("function") or {}).get("arguments")
        if fragment:
            opened.text += fragment
            out += self.event(
                "response.function_call_arguments.delta",
                item_id=opened.item["id"],
                output_index=opened.output_index,
                delta=fragment,
            )
        return out

    def open(self, item: Item) -> bytes:
        out = self.close("completed")
        self.open_item = OpenItem(len(self.output), item)
        self.output.append(item)
        return out + self.event("response.output_item.added", output_index=len(self.output) - 1, item=item)

    def close(self, status: str) -> bytes:
        opened, self.open_item = self.open_item, None
        if opened is None:
            return b""
        place = {"item_id": opened.item["id"], "output_index": opened.output_index}
        if opened.item["type"] == "message":
            done = output_message(opened.text, status, opened.item["id"])
            part = done["content"][0]
            out = self.event(
                "response.output_text.done", **place, content_index=0, text=opened.text, logprobs=[]
            )
            out += self.event("response.content_part.done", **place, content_index=0, part=part)
        else:
            done = opened.item | {"arguments": opened.text, "status": "completed"}
            out = self.event(
                "response.function_call_arguments.done", **place, name=done["name"], arguments=opened.text
            )
        self.output[opened.output_index] = done
        return out + self.event("response.output_item.done", output_index=opened.output_index, item=done)

    def finish(self, model: str, finish_reason: str, usage: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The final Response, and the events that close the stream with it."""
        out = self.close("incomplete" if finish_reason in INCOMPLETE_REASONS else "completed")
        self.close_calls()
        response = self.snapshot(
            model, "completed", output=self.output, finish_reason=finish_reason, usage=usage
        )
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return response, out + self.event(kind, response=response)

    def close_calls(self) -> None:
        """Arguments that arrived after their call's item closed (interleaved calls) are kept."""
        for opened in self.calls.values():
            self.output[opened.output_index] = self.output[opened.output_index] | {"arguments": opened.text}

    def fail(self, model: str, error: GatewayError, usage: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        out = self.close("incomplete")
        response = self.snapshot(model, "failed", output=self.output, usage=usage, error=error)
        return response, out + self.event("response.failed", response=response)
