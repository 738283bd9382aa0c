"""The bounded send queue, against the real Redis log, without a socket."""

from __future__ import annotations

import asyncio
from typing import Any

from realtime.outbox import Outbox
from realtime.streams import Cursor, StreamEvent, apublish, new_stream_id
from testing.metrics import registry_value

SCHEMA = "t_alpha"


async def published(stream_id: str, event: dict[str, Any], *, final: bool = False) -> StreamEvent:
    seq = await apublish(SCHEMA, stream_id, event, final=final)
    return StreamEvent(stream_id, seq, event, final)


async def drain(outbox: Outbox) -> list[dict[str, Any]]:
    received = []
    while (message := await outbox.get()) is not None:
        received.append(message)
    return received


def test_waiting_chunks_are_coalesced_and_nothing_else_is() -> None:
    async def run() -> tuple[list[dict[str, Any]], int]:
        stream_id = new_stream_id("job")
        outbox = Outbox(Cursor(SCHEMA, stream_id), max_messages=8, max_bytes=65_536)
        outbox.in_log = False  # a live reader, caught up
        before = registry_value("aiaas_websocket_coalesced_messages_total")
        for text in ("a", "b", "c"):
            outbox.offer(await published(stream_id, {"type": "chunk", "delta": text}))
        outbox.offer(await published(stream_id, {"type": "status", "n": 1}))
        outbox.offer(await published(stream_id, {"type": "chunk", "delta": "d"}))
        outbox.offer(await published(stream_id, {"type": "done"}, final=True))
        return await drain(outbox), int(registry_value("aiaas_websocket_coalesced_messages_total") - before)

    received, coalesced = asyncio.run(run())
    assert [(m["type"], m.get("delta"), m.get("from_seq"), m["seq"]) for m in received] == [
        ("chunk", "abc", 1, 3),
        ("status", None, None, 4),
        ("chunk", "d", None, 5),
        ("done", None, None, 6),
    ]
    assert coalesced == 2


def test_a_full_queue_leaves_events_in_the_log_and_refills_from_it() -> None:
    async def run() -> tuple[list[int], int]:
        stream_id = new_stream_id("job")
        outbox = Outbox(Cursor(SCHEMA, stream_id), max_messages=2, max_bytes=65_536, poll_seconds=0.1)
        outbox.in_log = False
        for n in range(1, 7):
            outbox.offer(await published(stream_id, {"type": "status", "n": n}, final=n == 6))
        held = len(outbox.messages)
        refill = asyncio.ensure_future(outbox.refill())
        received = await asyncio.wait_for(drain(outbox), 10)
        await asyncio.wait_for(refill, 10)
        return [message["n"] for message in received], held

    order, held = asyncio.run(run())
    assert held == 2
    assert order == [1, 2, 3, 4, 5, 6]
