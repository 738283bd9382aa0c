"""Ordered per-stream event logs in Redis: publish once, read or follow from any seq.

A stream (a chat completion, an agent run, an ingestion job) is one Redis
stream under `rt:{<schema>:<stream_id>}:log`. Its entry ids are `<seq>-0`, so
seq is 1, 2, 3, ... per stream, assigned in the same Lua step that appends the
event, trims the log and refreshes its TTL (atomic across processes). After
the append, the event is sent to the stream's Channels group
(`rt.<schema>.<stream_id>`), which live subscribers joined.

Tenancy: every key and group name carries the tenant's schema, and every read
takes the schema of the caller's tenant, so a tenant can only ever read its
own streams; the same stream id under another schema is another, empty stream.

Retention (bounded, documented in docs/realtime.md): a log keeps its newest
REALTIME_STREAM_MAX_EVENTS events and expires REALTIME_STREAM_TTL_SECONDS
after its last event; an event's JSON is at most REALTIME_EVENT_MAX_BYTES.

Delivery is gap-free: the log is the source of truth and group messages are a
fast path. `Cursor` delivers seq after seq with no gap and no repeat, reading
the log whenever a group message is missing, late or out of order.
"""

from __future__ import annotations

import asyncio
import re
import uuid
import weakref
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import BaseChannelLayer, channel_layers, get_channel_layer
from django.conf import settings
from redis.commands.core import AsyncScript

from aiaas.redis_clients import async_client, sync_client
from aiaas.redis_keys import hash_tag, redis_key

PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9]{0,15}")
STREAM_ID_PATTERN = re.compile(r"[a-z][a-z0-9]{0,15}_[0-9a-f]{32}")
SCHEMA_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# What a Channels group message that carries a stream event is dispatched to.
GROUP_MESSAGE_TYPE = "stream.event"
READ_PAGE_SIZE = 200

# KEYS[1] the log; ARGV: event JSON, final ("1"/"0"), max events, TTL seconds.
# Returns the new seq, or -1 when the stream has already ended.
PUBLISH_SCRIPT = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 1
if #last > 0 then
  local fields = last[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'f' and fields[i + 1] == '1' then return -1 end
  end
  seq = tonumber(string.match(last[1][1], '^(%d+)')) + 1
end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], seq .. '-0', 'e', ARGV[1], 'f', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return seq
"""


class StreamClosedError(RuntimeError):
    """The stream already has its final event; nothing more can be published to it."""


class StreamGapError(RuntimeError):
    """Events a reader has not seen are no longer retained (the log was trimmed or expired)."""

    def __init__(self, stream_id: str, after: int, first_retained: int) -> None:
        super().__init__(
            f"stream {stream_id}: events after seq {after} are no longer retained "
            f"(the oldest retained is {first_retained})"
        )
        self.first_retained = first_retained


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One logged event: its seq, the published mapping, and whether it ends the stream."""

    stream_id: str
    seq: int
    event: dict[str, Any]
    final: bool

    def message(self) -> dict[str, Any]:
        """What a client receives: the event with its stream id and seq."""
        return {**self.event, "stream_id": self.stream_id, "seq": self.seq}


def new_stream_id(prefix: str) -> str:
    """A fresh, unguessable stream id: `run` -> `run_<32 hex digits>`."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(f"stream id prefix {prefix!r} must be 1-16 lowercase letters and digits")
    return f"{prefix}_{uuid.uuid4().hex}"


def is_stream_id(text: str) -> bool:
    return STREAM_ID_PATTERN.fullmatch(text) is not None


def log_key(schema_name: str, stream_id: str) -> str:
    check_names(schema_name, stream_id)
    return redis_key("rt", hash_tag(schema_name, stream_id), "log")


def group_name(schema_name: str, stream_id: str) -> str:
    """The Channels group live subscribers of the stream join (carries the tenant)."""
    check_names(schema_name, stream_id)
    return f"rt.{schema_name}.{stream_id}"


def check_names(schema_name: str, stream_id: str) -> None:
    """A missing or public schema is an error, never a shared namespace."""
    if not SCHEMA_PATTERN.fullmatch(schema_name) or schema_name == settings.PUBLIC_SCHEMA_NAME:
        raise ValueError(f"{schema_name!r} is not a tenant schema")
    if not is_stream_id(stream_id):
        raise ValueError(f"{stream_id!r} is not a stream id (see new_stream_id)")


def encode(event: Mapping[str, Any]) -> bytes:
    payload = orjson.dumps(dict(event))
    if len(payload) > settings.REALTIME_EVENT_MAX_BYTES:
        raise ValueError(f"an event is at most {settings.REALTIME_EVENT_MAX_BYTES} bytes of JSON")
    return payload


def script_args(event: Mapping[str, Any], final: bool) -> list[bytes | str | int]:
    return [
        encode(event),
        "1" if final else "0",
        settings.REALTIME_STREAM_MAX_EVENTS,
        settings.REALTIME_STREAM_TTL_SECONDS,
    ]


def group_message(stream_id: str, seq: int, event: Mapping[str, Any], final: bool) -> dict[str, Any]:
    return {
        "type": GROUP_MESSAGE_TYPE,
        "stream_id": stream_id,
        "seq": seq,
        "event": dict(event),
        "final": final,
    }


def channel_layer() -> BaseChannelLayer:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS is not configured")
    return layer


def publish(schema_name: str, stream_id: str, event: Mapping[str, Any], *, final: bool = False) -> int:
    """Append `event` to the stream's log and send it to live subscribers; its seq.

    For synchronous code (Celery tasks, management commands); async code uses
    `apublish`. Raises StreamClosedError after the stream's final event,
    ValueError for a bad schema, stream id or oversized event, and
    redis.RedisError when Redis does not answer (nothing is then published).
    """
    key = log_key(schema_name, stream_id)
    seq = int(cast("Any", sync_client("realtime").eval(PUBLISH_SCRIPT, 1, key, *script_args(event, final))))
    if seq < 0:
        raise StreamClosedError(f"stream {stream_id} has ended")
    async_to_sync(channel_layer().group_send)(
        group_name(schema_name, stream_id), group_message(stream_id, seq, event, final)
    )
    return seq


async def apublish(schema_name: str, stream_id: str, event: Mapping[str, Any], *, final: bool = False) -> int:
    """`publish` for async code (the same promises), on the process's shared Redis pool."""
    key = log_key(schema_name, stream_id)
    seq = int(await publish_script()(keys=[key], args=script_args(event, final)))
    if seq < 0:
        raise StreamClosedError(f"stream {stream_id} has ended")
    await channel_layer().group_send(
        group_name(schema_name, stream_id), group_message(stream_id, seq, event, final)
    )
    return seq


_publish_scripts: weakref.WeakKeyDictionary[aioredis.Redis, AsyncScript] = weakref.WeakKeyDictionary()


def publish_script() -> AsyncScript:
    """The publish script on this event loop's client of the "realtime" pool."""
    client = async_redis()
    script = _publish_scripts.get(client)
    if script is None:
        script = _publish_scripts[client] = client.register_script(PUBLISH_SCRIPT)
    return script


_loop_layers: dict[asyncio.AbstractEventLoop, BaseChannelLayer] = {}


def receiving_layer() -> BaseChannelLayer:
    """A channel layer of this event loop's own to receive on: one layer object
    receives in one loop only (the server's consumers use the shared one)."""
    loop = asyncio.get_running_loop()
    layer = _loop_layers.get(loop)
    if layer is None:
        for stale in [other for other in _loop_layers if other.is_closed()]:
            del _loop_layers[stale]
        layer = _loop_layers[loop] = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    return layer


def async_redis() -> aioredis.Redis:
    """This event loop's client of the "realtime" pool (a client cannot cross loops)."""
    return async_client("realtime")


def parse_entries(stream_id: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[StreamEvent]:
    return [
        StreamEvent(
            stream_id,
            int(entry_id.split(b"-", 1)[0]),
            orjson.loads(fields[b"e"]),
            fields.get(b"f") == b"1",
        )
        for entry_id, fields in entries
    ]


async def aread(
    schema_name: str, stream_id: str, after: int = 0, count: int = READ_PAGE_SIZE
) -> list[StreamEvent]:
    """Up to `count` retained events with seq > `after`, in order."""
    entries = await async_redis().xrange(log_key(schema_name, stream_id), min=f"({after}-0", count=count)
    return parse_entries(stream_id, cast("list[tuple[bytes, dict[bytes, bytes]]]", entries))


def read(schema_name: str, stream_id: str, after: int = 0, count: int = READ_PAGE_SIZE) -> list[StreamEvent]:
    """`aread` for synchronous code."""
    entries = sync_client("realtime").xrange(log_key(schema_name, stream_id), min=f"({after}-0", count=count)
    return parse_entries(stream_id, cast("list[tuple[bytes, dict[bytes, bytes]]]", entries))


async def alast(schema_name: str, stream_id: str) -> StreamEvent | None:
    """The stream's newest retained event, if any."""
    entries = await async_redis().xrevrange(log_key(schema_name, stream_id), count=1)
    events = parse_entries(stream_id, cast("list[tuple[bytes, dict[bytes, bytes]]]", entries))
    return events[0] if events else None


async def aexists(schema_name: str, stream_id: str) -> bool:
    """Whether the tenant has this stream (it may have expired, or belong to another tenant)."""
    return bool(await async_redis().exists(log_key(schema_name, stream_id)))


class Cursor:
    """A reader's position in one stream: hands out every event once, in seq order.

    `offer` takes a live group message and returns what can be delivered now:
    the event itself when it is the next one, nothing when it was already
    delivered, or (when events are missing in between) the log read from the
    position. `next_page` reads the log from the position. A reader whose next
    event is no longer retained gets StreamGapError.
    """

    def __init__(self, schema_name: str, stream_id: str, after: int = 0) -> None:
        check_names(schema_name, stream_id)
        self.schema_name = schema_name
        self.stream_id = stream_id
        self.position = after
        self.finished = False

    async def next_page(self, count: int = READ_PAGE_SIZE) -> list[StreamEvent]:
        return self.take(await self.peek_page(count))

    async def peek_page(self, count: int = READ_PAGE_SIZE) -> list[StreamEvent]:
        """The logged events after the position, without moving it."""
        return await aread(self.schema_name, self.stream_id, self.position, count)

    async def offer(self, message: Mapping[str, Any]) -> list[StreamEvent]:
        seq = int(message["seq"])
        if self.finished or seq <= self.position:
            return []
        if seq == self.position + 1:
            return self.take(
                [StreamEvent(self.stream_id, seq, dict(message["event"]), bool(message["final"]))]
            )
        return await self.next_page()

    def take(self, events: list[StreamEvent]) -> list[StreamEvent]:
        taken: list[StreamEvent] = []
        for event in events:
            if self.finished or event.seq <= self.position:
                continue
            if event.seq != self.position + 1:
                raise StreamGapError(self.stream_id, self.position, event.seq)
            taken.append(event)
            self.position, self.finished = event.seq, event.final
        return taken


async def subscribe(
    schema_name: str, stream_id: str, after: int = 0, *, poll_seconds: float = 2.0
) -> AsyncGenerator[StreamEvent, None]:
    """Every event of the stream after `after`, then live ones, until its final event.

    For server-side followers (tests, workers); WebSocket clients use
    /ws/v1/streams/<stream_id>. Joins the group before reading the log, so
    nothing published meanwhile is missed; re-reads the log every
    `poll_seconds` without news, so a lost group message only delays.
    """
    cursor = Cursor(schema_name, stream_id, after)
    layer = receiving_layer()
    channel = await layer.new_channel()
    group = group_name(schema_name, stream_id)
    await layer.group_add(group, channel)
    try:
        more_in_log = True
        while not cursor.finished:
            if more_in_log:
                events = await cursor.next_page()
            else:
                try:
                    message = await asyncio.wait_for(layer.receive(channel), poll_seconds)
                except TimeoutError:
                    more_in_log = True
                    continue
                events = await cursor.offer(message)
            # A full page read (from the log, or to fill a gap) may have left more behind it.
            more_in_log = len(events) >= READ_PAGE_SIZE
            for event in events:
                yield event
    finally:
        await layer.group_discard(group, channel)
