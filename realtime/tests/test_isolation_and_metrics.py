"""Many sockets at once for two tenants, cancellations, and the /metrics counters."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from realtime import streams
from realtime.consumers import StreamsConsumer
from realtime.tests.clients import (
    bearer,
    chat_body,
    expected_answer,
    metric,
    open_socket,
    read_all,
    text_of,
    ws_url,
)
from testing.tenants import TenantFixture


async def chat_until(
    gateway: str, key: str, prompt: str, stop_after: int | None, cancel: bool
) -> list[dict[str, Any]]:
    """A client that asks, reads `stop_after` messages (all when None), then cancels or drops."""
    messages: list[dict[str, Any]] = []
    async with open_socket(ws_url(gateway, "/ws/v1/chat/completions"), bearer(key)) as connection:
        await connection.send(orjson.dumps(chat_body(prompt)).decode())
        try:
            while stop_after is None or len(messages) < stop_after:
                messages.append(orjson.loads(await connection.recv()))
        except ConnectionClosed:
            return messages
        if cancel:
            with contextlib.suppress(ConnectionClosed):  # it may have ended just then
                await connection.send('{"type": "cancel"}')
    return messages


def test_concurrent_streams_cancelled_at_random_never_cross_sessions(
    gateway: str, serving_tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    chooser = random.Random(6)
    clients = [
        (
            tenant,
            f"Client {n} of {tenant.tenant.slug}: {chooser.random()}",
            chooser.choice([None, 0, 1, 2, 5, 9]),
            n % 2 == 0,
        )
        for n in range(16)
        for tenant in (serving_tenant, other_tenant)
    ]

    async def run() -> list[list[dict[str, Any]]]:
        return list(
            await asyncio.gather(
                *(
                    chat_until(gateway, tenant.admin_key, prompt, stop, cancel)
                    for tenant, prompt, stop, cancel in clients
                )
            )
        )

    results = asyncio.run(asyncio.wait_for(run(), 60))
    stream_ids: set[str] = set()
    for (_, prompt, stop_after, _), messages in zip(clients, results, strict=True):
        expected = expected_answer(prompt)
        assert len({message["stream_id"] for message in messages}) <= 1
        stream_ids |= {message["stream_id"] for message in messages}
        assert expected.startswith(text_of(messages))
        if stop_after is None:
            assert messages[-1]["type"] == "done"
            assert messages[-1]["content"] == expected
    assert len(stream_ids) == len([messages for messages in results if messages])


def test_a_cancel_message_stops_the_completion(gateway: str, serving_tenant: TenantFixture) -> None:
    async def run() -> tuple[list[dict[str, Any]], int | None]:
        async with open_socket(
            ws_url(gateway, "/ws/v1/chat/completions"), bearer(serving_tenant.admin_key)
        ) as connection:
            await connection.send(
                orjson.dumps(chat_body("Wait for it.", user="fault:slow_first_token")).decode()
            )
            await connection.send('{"type": "cancel"}')
            return await read_all(connection), connection.close_code

    messages, close_code = asyncio.run(asyncio.wait_for(run(), 30))
    assert [message["type"] for message in messages] == ["error"]
    assert messages[0]["status"] == 499
    assert messages[0]["error"]["code"] == "cancelled"
    assert close_code == 1000


def test_metrics_count_open_sockets_and_are_served_in_prometheus_text(
    platform_url: str, gateway: str, serving_tenant: TenantFixture
) -> None:
    async def run() -> tuple[int, int]:
        async with open_socket(ws_url(gateway, "/ws/v1/chat/completions"), bearer(serving_tenant.admin_key)):
            while_open = await asyncio.to_thread(metric, platform_url, "aiaas_websocket_connections")
        deadline = time.monotonic() + 5
        while (
            after := await asyncio.to_thread(metric, platform_url, "aiaas_websocket_connections")
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return while_open, after

    assert asyncio.run(run()) == (1, 0)
    # Served (metric() asserts each once); their increases: the slow and stalled reader
    # tests in test_stream_socket.py.
    metric(platform_url, "aiaas_websocket_coalesced_messages_total")
    metric(platform_url, "aiaas_websocket_send_errors_total")


def test_a_socket_whose_consumer_fails_after_accept_is_no_longer_counted(
    platform_url: str, gateway: str, serving_tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(self: StreamsConsumer) -> None:
        raise RuntimeError("Redis went away")

    monkeypatch.setattr(StreamsConsumer, "on_accept", failing)
    stream_id = streams.new_stream_id("job")
    streams.publish(serving_tenant.tenant.schema_name, stream_id, {"type": "status"})
    before = metric(platform_url, "aiaas_websocket_connections")

    async def run() -> int | None:
        url = ws_url(gateway, f"/ws/v1/streams/{stream_id}")
        async with open_socket(url, bearer(serving_tenant.admin_key)) as connection:
            await read_all(connection)
            return connection.close_code

    assert asyncio.run(asyncio.wait_for(run(), 30)) == 1011
    deadline = time.monotonic() + 5
    while metric(platform_url, "aiaas_websocket_connections") != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(platform_url, "aiaas_websocket_connections") == before
