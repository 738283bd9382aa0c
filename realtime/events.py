"""Events of a stream that are not a model's output: errors, in OpenAI's shape."""

from __future__ import annotations

from typing import Any

from gateway.errors import GatewayError

# An error's texts may echo the request (a model name, a field name): capped, so it always fits an event.
ERROR_TEXT_MAX_CHARS = 1_000


def error_event(error: GatewayError) -> dict[str, Any]:
    body = error.body()
    body["error"] = {key: capped(value) for key, value in body["error"].items()}
    event: dict[str, Any] = {"type": "error", "status": error.status, **body}
    if error.retry_after is not None:
        event["retry_after"] = int(error.headers()["retry-after"])
    return event


def capped(value: Any) -> Any:
    if isinstance(value, str) and len(value) > ERROR_TEXT_MAX_CHARS:
        return value[: ERROR_TEXT_MAX_CHARS - 1] + "\u2026"
    return value
