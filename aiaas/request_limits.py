"""Request bodies bounded in size and in time before any application reads them.

`BoundedBodyMiddleware` wraps every HTTP request (the gateway, Django, /metrics)
and promises:

- a body over its limit is answered 413 `request_too_large`, counted as the
  bytes arrive (a Content-Length over the limit is refused before any is read,
  chunked bodies when the count passes it), so Django never spools it to disk;
- a body still arriving `timeout_seconds` after the headers is answered 408
  `request_timeout`, and the connection is closed (slow clients);
- the limit is `max_bytes`, except for a multipart/form-data POST to a path
  `upload_paths` matches (file uploads), whose limit is `upload_max_bytes`;
- the application receives the body in one message with its Content-Length
  set: Django REST framework reads no body without one, so a chunked body
  reached /api as empty.

Refusals close the connection: the rest of an unread body is never read.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiaas.api_errors import error_body


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_bytes: int
    timeout_seconds: float
    upload_paths: re.Pattern[str] | None = None
    upload_max_bytes: int = 0

    def max_bytes_for(self, scope: Scope) -> int:
        if (
            self.upload_paths is not None
            and scope["method"] == "POST"
            and self.upload_paths.fullmatch(scope["path"])
            and is_multipart(scope)
        ):
            return self.upload_max_bytes
        return self.max_bytes


class BodyTooLargeError(Exception):
    pass


class ClientGoneError(Exception):
    pass


class BoundedBodyMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = declared_length(scope)
        except ValueError:
            await refuse(send, 400, "The Content-Length header is not a number.", "invalid_content_length")
            return
        max_bytes = self.limits.max_bytes_for(scope)
        if declared is not None and declared > max_bytes:
            await refuse_too_large(send, max_bytes)
            return
        try:
            reading = read_body(receive, max_bytes)
            body = await asyncio.wait_for(reading, self.limits.timeout_seconds)
        except BodyTooLargeError:
            await refuse_too_large(send, max_bytes)
            return
        except TimeoutError:
            message = f"The request body did not arrive within {self.limits.timeout_seconds:g} seconds."
            await refuse(send, 408, message, "request_timeout")
            return
        except ClientGoneError:
            return
        await self.app(with_content_length(scope, len(body)), replaying(body, receive), send)


async def refuse_too_large(send: Send, max_bytes: int) -> None:
    await refuse(send, 413, f"The request body exceeds {max_bytes} bytes.", "request_too_large")


def is_multipart(scope: Scope) -> bool:
    return any(
        name == b"content-type" and value.lower().startswith(b"multipart/form-data")
        for name, value in scope["headers"]
    )


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value)
    return None


async def read_body(receive: Receive, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def with_content_length(scope: Scope, length: int) -> Scope:
    """The scope with the body's real length and no Transfer-Encoding (the body is whole now)."""
    headers = [(name, value) for name, value in scope["headers"] if name not in HEADERS_REPLACED]
    if length or len(headers) != len(scope["headers"]):
        headers.append((b"content-length", str(length).encode()))
    return {**scope, "headers": headers}


HEADERS_REPLACED = {b"content-length", b"transfer-encoding"}


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives the body read already, then the client's later messages (disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def refuse(send: Send, status: int, message: str, code: str) -> None:
    body = json.dumps(error_body(status, message, code)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
