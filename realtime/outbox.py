"""A connection's bounded send queue, fed gap-free from one stream's log.

Events are offered as they are published (`offer`, which never blocks the
publisher). While the queue has room, the next event in seq order joins it.
When it has no room, or an event arrives out of order, the event is left in
the log (which holds it anyway) and the queue is refilled from the log as the
reader frees room. So a slow reader costs at most the queue's bound in memory,
never slows the publisher or anyone else, loses nothing, and still receives
the final event.

Coalescing: a text chunk (`{"type": "chunk", "delta": "<text>"}`) joining a
queue whose last pending message is also a text chunk is appended to it (up
to COALESCE_MAX_BYTES of text): the merged message carries the later seq and
`from_seq`, the first seq it covers. Nothing else is ever merged or dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import orjson
import redis

from aiaas.observability.metrics import WEBSOCKET_COALESCED_MESSAGES
from realtime.streams import READ_PAGE_SIZE, Cursor, StreamEvent, StreamGapError

COALESCE_MAX_BYTES = 16_384
CHUNK_FIELDS = frozenset({"type", "delta", "stream_id", "seq", "from_seq"})
CHUNK_OVERHEAD_BYTES = 100  # a chunk message's JSON around its delta, roughly


def is_text_chunk(message: dict[str, Any]) -> bool:
    return (
        message.get("type") == "chunk"
        and isinstance(message.get("delta"), str)
        and message.keys() <= CHUNK_FIELDS
    )


def size_of(message: dict[str, Any]) -> int:
    if is_text_chunk(message):
        return len(message["delta"]) + CHUNK_OVERHEAD_BYTES
    return len(orjson.dumps(message))


class Outbox:
    """At most `max_messages` messages and about `max_bytes` bytes (plus one event)
    waiting for one reader; see the module docstring."""

    def __init__(
        self, cursor: Cursor, *, max_messages: int, max_bytes: int, poll_seconds: float = 2.0
    ) -> None:
        self.cursor = cursor
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.poll_seconds = poll_seconds
        self.messages: deque[dict[str, Any]] = deque()
        self.sizes: deque[int] = deque()
        self.bytes = 0
        self.in_log = True  # events may wait in the log: read them when there is room
        self.changed = asyncio.Event()  # a message, an error or room
        self.error: Exception | None = None  # why the reader cannot be served any further

    def has_room(self) -> bool:
        return len(self.messages) < self.max_messages and self.bytes < self.max_bytes

    def offer(self, event: StreamEvent) -> None:
        """A just-published event: queued when it is next and fits, else read from the log later."""
        if event.seq <= self.cursor.position or self.cursor.finished:
            return
        if self.in_log or event.seq != self.cursor.position + 1 or not self.has_room():
            self.in_log = True
            self.changed.set()
            return
        self.cursor.take([event])
        self.append(event.message())

    def append(self, message: dict[str, Any]) -> None:
        size = size_of(message)
        if (
            is_text_chunk(message)
            and self.messages
            and is_text_chunk(self.messages[-1])
            and self.sizes[-1] + size <= COALESCE_MAX_BYTES
        ):
            tail = self.messages[-1]
            tail.setdefault("from_seq", tail["seq"])
            tail["delta"] += message["delta"]
            tail["seq"] = message["seq"]
            self.sizes[-1] += size - CHUNK_OVERHEAD_BYTES
            self.bytes += size - CHUNK_OVERHEAD_BYTES
            WEBSOCKET_COALESCED_MESSAGES.inc()
        else:
            self.messages.append(message)
            self.sizes.append(size)
            self.bytes += size
        self.changed.set()

    async def get(self) -> dict[str, Any] | None:
        """The next message for the reader; None once the final one was handed out.
        Raises StreamGapError when the reader's next event is no longer retained, or
        the Redis error that stopped the refill."""
        while not self.messages:
            if self.error is not None:
                raise self.error
            if self.cursor.finished:
                return None
            self.changed.clear()
            await self.changed.wait()
        self.bytes -= self.sizes.popleft()
        message = self.messages.popleft()
        self.changed.set()  # room for the refill
        return message

    async def refill(self) -> None:
        """Run for the connection's life: move logged events into the queue as room frees up;
        every `poll_seconds` without news, look in the log anyway (a lost live message)."""
        while not self.cursor.finished and self.error is None:
            if not (self.in_log and self.has_room()):
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), self.poll_seconds)
                    continue
                self.in_log = True
                continue
            try:
                await self.read_log()
            except (redis.RedisError, OSError) as error:
                self.error = error
                self.changed.set()

    async def read_log(self) -> None:
        self.in_log = False  # an offer during the read sets it again
        events = await self.cursor.peek_page(READ_PAGE_SIZE)
        for event in events:
            if not self.has_room():
                self.in_log = True
                return
            try:
                taken = self.cursor.take([event])
            except StreamGapError as error:
                self.error = error
                self.changed.set()
                return
            if taken:  # not one the live path already queued
                self.append(event.message())
        if len(events) == READ_PAGE_SIZE:
            self.in_log = True
