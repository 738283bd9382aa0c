"""WebSocket clients for the tests: the `websockets` library, as a Python client would use it."""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.simulated.provider import ChatMessage, answer_words
from testing.metrics import scrape


def ws_url(gateway: str, path: str) -> str:
    parts = urlsplit(gateway)
    return f"ws://{parts.netloc}{path}"


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def chat_body(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}], **extra}


def expected_answer(prompt: str) -> str:
    """What the simulated provider answers to `prompt`, uncut."""
    return " ".join(answer_words([ChatMessage("user", prompt)]))


def open_socket(url: str, headers: dict[str, str] | None = None, **options: Any) -> connect:
    options = {"proxy": None, "compression": None, **options}
    return connect(url, additional_headers=headers, open_timeout=10, close_timeout=5, **options)


def tiny_receive_buffer_socket(url: str) -> socket.socket:
    """A connected TCP socket whose kernel receive buffer is small, so a client that
    stops reading pushes back on the server after little data."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    return sock


async def read_all(connection: ClientConnection) -> list[dict[str, Any]]:
    """Every message until the server closes the socket."""
    messages: list[dict[str, Any]] = []
    try:
        while True:
            messages.append(orjson.loads(await connection.recv()))
    except ConnectionClosed:
        return messages


def text_of(messages: list[dict[str, Any]]) -> str:
    return "".join(message["delta"] for message in messages if message["type"] == "chunk")


def metric(platform_url: str, name: str) -> int:
    """One metric of the server's GET /metrics (asserted to be served once)."""
    values = [sample.value for sample in scrape(platform_url) if sample.name == name]
    assert len(values) == 1, values
    return int(values[0])


def first_stream_event(gateway: str, stream_id: str, key: str) -> dict[str, Any]:
    """The first event a stream socket sends a bearer of `key` (within 30 s)."""
    url = ws_url(gateway, f"/ws/v1/streams/{stream_id}")

    async def first() -> dict[str, Any]:
        async with open_socket(url, bearer(key)) as connection:
            event: dict[str, Any] = orjson.loads(await connection.recv())
            return event

    return asyncio.run(asyncio.wait_for(first(), 30))
