"""Cancelling a WebSocket completion: its final event and its settle are never cut short."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.transports import websocket as chat_module
from gateway.transports.websocket import ChatCompletion
from realtime import streams
from tenants.models import ApiKey
from testing.tenants import TenantFixture

SLOW_SECONDS = 0.5


def test_cancelling_twice_or_at_shutdown_cuts_neither_the_final_event_nor_the_settle(
    serving_tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = serving_tenant.tenant.schema_name
    stream_id = streams.new_stream_id("chat")
    settled: list[tuple[int, str]] = []

    async def slow_final(schema_name: str, stream: str, event: Any, *, final: bool = False) -> int:
        if final:
            await asyncio.sleep(SLOW_SECONDS)
        return await streams.apublish(schema_name, stream, event, final=final)

    monkeypatch.setattr(chat_module, "apublish", slow_final)

    async def serve_forever() -> None:
        await asyncio.sleep(60)

    completion: ChatCompletion | None = None

    async def slow_settle() -> None:
        await asyncio.sleep(SLOW_SECONDS)
        assert completion is not None
        settled.append((completion.context.status, completion.context.error_type))

    async def run() -> None:
        nonlocal completion
        completion = ChatCompletion(ApiKey(tenant=serving_tenant.tenant), schema, stream_id, b"{}")
        monkeypatch.setattr(completion, "serve", serve_forever)
        monkeypatch.setattr(completion.context, "settle", slow_settle)
        completion.start(lambda event: None)
        await asyncio.sleep(0.05)
        completion.cancel()
        await asyncio.sleep(SLOW_SECONDS / 2)  # its final event is being published
        completion.cancel()
        await asyncio.sleep(SLOW_SECONDS)  # it is settling
        assert completion.task is not None
        completion.task.cancel()  # as the server's shutdown does
        await asyncio.gather(completion.task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(run(), 10))
    logged = streams.read(schema, stream_id)
    assert [(event.event["type"], event.event["error"]["code"], event.final) for event in logged] == [
        ("error", "cancelled", True)
    ]
    assert settled == [(499, "cancelled")]
