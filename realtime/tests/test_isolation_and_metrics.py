"""Many sockets at once for two tenants, cancellations, and the /metrics counters."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import httpx
import orjson
from websockets.exceptions import ConnectionClosed

from aiaas.testing.tenants import TenantFixture
from realtime.tests.clients import bearer, chat_body, expected_answer, open_socket, read_all, text_of, ws_url


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


def metric(platform_url: str, name: str) -> int:
    body = httpx.get(f"{platform_url}/metrics", timeout=5).text
    values = [line.split()[1] for line in body.splitlines() if line.startswith(f"{name} ")]
    assert len(values) == 1, body
    return int(values[0])


def test_metrics_count_open_sockets_and_are_served_in_prometheus_text(
    platform_url: str, gateway: str, serving_tenant: TenantFixture
) -> None:
    async def run() -> tuple[int, int]:
        async with open_socket(ws_url(gateway, "/ws/v1/chat/completions"), bearer(serving_tenant.admin_key)):
            while_open = await asyncio.to_thread(metric, platform_url, "ws_active_connections")
        deadline = time.monotonic() + 5
        while (
            after := await asyncio.to_thread(metric, platform_url, "ws_active_connections")
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return while_open, after

    assert asyncio.run(run()) == (1, 0)
    assert metric(platform_url, "ws_backpressure_coalesced") >= 0
    assert metric(platform_url, "ws_send_errors") >= 0
