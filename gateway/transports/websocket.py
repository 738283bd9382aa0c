"""One chat completion served over a WebSocket, through the gateway's own code.

Validation, routing, limits and budget (`service.prepare_chat`), the provider
calls with retries, fallbacks and mid-stream failover (`service.stream_chat`),
the error ladder and the usage ledger and request logs
(`RequestContext.settle`) are the chat service's (gateway/service.py), as for
/v1 over HTTP; only the transport differs. Every event is published to the
completion's stream log before its socket sees it, so a client that loses
its connection resumes on /ws/v1/streams/<stream_id>.

A completion runs to its end even when its socket drops (it can be resumed);
`{"type": "cancel"}` from the client stops it.

Its final event always fits in an event (REALTIME_EVENT_MAX_BYTES): a `done`
too large to log goes without its `content` (`"content_truncated": true`; the
chunks carried every delta), and an error event's texts are capped. When an
event cannot be published at all, the completion ends with an internal error
event instead; when even that cannot be published, the consumer closes the
socket with 1011 (`final_published` tells it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from django.conf import settings

from gateway import service
from gateway.errors import NO_OUTPUT, GatewayError, error_for, from_provider_error, invalid
from gateway.events import ChatDelta, ChatFailed
from gateway.service import RequestContext
from gateway.validation import parse_chat_request
from realtime.consumers import CLOSE_INTERNAL_ERROR, StreamConsumer, new_outbox
from realtime.events import error_event
from realtime.outbox import Outbox
from realtime.streams import StreamEvent, apublish, new_stream_id
from tenants.models import ApiKey

logger = logging.getLogger(__name__)

Deliver = Callable[[StreamEvent], None]


def fits(event: dict[str, Any]) -> bool:
    return len(orjson.dumps(event)) <= settings.REALTIME_EVENT_MAX_BYTES


def merged_delta_max_chars() -> int:
    """How much text the writer merges into one chunk: an eighth of an event, as
    JSON escapes a character into at most 6 bytes."""
    return int(settings.REALTIME_EVENT_MAX_BYTES) // 8


class StreamWriter:
    """Publishes one stream's events in order. Text deltas that arrive while a
    publish is in flight are sent together as one chunk, so a slow Redis slows
    nobody's model output: it only makes the chunks bigger."""

    def __init__(self, schema_name: str, stream_id: str) -> None:
        self.schema_name = schema_name
        self.stream_id = stream_id
        self.deliver: Deliver | None = None
        self.pending: list[tuple[dict[str, Any], bool]] = []
        self.final_queued = False  # the final event was handed to the writer
        self.final_seq: int | None = None  # set once the final event is in the log
        self.wake = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self.run())

    def add(self, event: dict[str, Any], *, final: bool = False) -> None:
        if self.task.done():
            self.task.result()  # re-raise why publishing stopped (Redis lost, say)
        last = self.pending[-1][0] if self.pending else None
        if (
            last is not None
            and is_text(last)
            and is_text(event)
            and not final
            and len(last["delta"]) + len(event["delta"]) <= merged_delta_max_chars()
        ):
            last["delta"] += event["delta"]
        else:
            self.pending.append((event, final))
        self.wake.set()

    async def finish(self, event: dict[str, Any]) -> None:
        """Publish the final event after everything before it. When publishing
        already stopped (an event it could not publish), the final event goes alone."""
        if self.final_seq is not None:
            return
        if self.task.done():
            self.task = asyncio.ensure_future(self.publish(event, final=True))
        else:
            self.add(event, final=True)
        self.final_queued = True
        # Shielded: cancelling the completion must not cut its log short.
        await asyncio.shield(self.task)

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            for event, final in batch:
                await self.publish(event, final=final)
                if final:
                    return

    async def publish(self, event: dict[str, Any], *, final: bool) -> None:
        seq = await apublish(self.schema_name, self.stream_id, event, final=final)
        if final:
            self.final_seq = seq
        if self.deliver is not None:
            self.deliver(StreamEvent(self.stream_id, seq, event, final))


def is_text(event: dict[str, Any]) -> bool:
    return event.get("type") == "chunk" and event.keys() == {"type", "delta"}


def chunk_event(delta: dict[str, Any]) -> dict[str, Any]:
    """Text as `delta`; a structured delta (tool calls) rides along under its own names."""
    event: dict[str, Any] = {"type": "chunk", "delta": delta.get("content") or ""}
    event.update({key: value for key, value in delta.items() if key != "content"})
    return event


class ChatCompletion:
    """A completion's run: `start` it, attach or detach its socket, `cancel` it."""

    def __init__(self, api_key: ApiKey, schema_name: str, stream_id: str, body: bytes) -> None:
        self.api_key = api_key
        self.body = body
        self.context = RequestContext(f"req_{uuid.uuid4().hex}", endpoint="websocket", api_key=api_key)
        self.writer = StreamWriter(schema_name, stream_id)
        self.transcript: list[str] = []
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False
        self.running = False

    def start(self, deliver: Deliver) -> None:
        self.writer.deliver = deliver
        self.task = asyncio.get_running_loop().create_task(self.run())
        RUNNING.add(self.task)
        self.task.add_done_callback(RUNNING.discard)

    @property
    def final_published(self) -> bool:
        """Whether the stream's final event is in its log (so its reader will get it)."""
        return self.writer.final_seq is not None

    def detach(self) -> None:
        """The socket is gone: the completion goes on into its log only."""
        self.writer.deliver = None

    def cancel(self) -> None:
        # Once: cancelling again would interrupt the final event's publish or the settle.
        if self.cancelled:
            return
        # The flag as well: a task cancelled before its first step would never run
        # its handlers, and Python 3.11's wait_for can swallow a cancellation.
        self.cancelled = True
        if self.task is not None and self.running:
            self.task.cancel()

    async def run(self) -> None:
        self.running = True
        try:
            if self.cancelled:
                raise asyncio.CancelledError
            await self.serve()
        except BaseException as failure:
            error = error_for(failure)
            if error.error_type == "internal_error":
                logger.exception("websocket chat completion %s failed", self.context.request_id)
            with contextlib.suppress(Exception):
                await self.fail(error)
            if not isinstance(failure, (asyncio.CancelledError, Exception)):
                raise
        finally:
            await self.settle()

    async def settle(self) -> None:
        """A final event on its way to the log, and the settle (ledger, request log,
        limits), run to their end even when the task is cancelled meanwhile (the
        server's shutdown); the cancellation is raised after them."""
        if self.context.logs_requests:
            self.context.response_text = self.context.response_text or "".join(self.transcript)
        interrupted = False
        if self.writer.final_queued:
            interrupted = await run_to_end(self.writer.task)
        self.writer.task.cancel()
        settling = asyncio.ensure_future(self.context.settle())
        interrupted = await run_to_end(settling) or interrupted
        settling.result()
        if interrupted:
            raise asyncio.CancelledError

    async def fail(self, error: GatewayError) -> None:
        self.context.fail(error)
        await self.writer.finish(error_event(error))

    async def serve(self) -> None:
        limit = settings.MAX_REQUEST_BYTES
        if len(self.body) > limit:
            raise GatewayError(
                413, f"The request body exceeds {limit} bytes.", "invalid_request_error", "request_too_large"
            )
        chat = parse_chat_request(self.body)
        if chat.choices > 1:
            # Its events (chunks, then one `done` with the content) carry a single answer.
            raise invalid("A WebSocket chat streams one choice: leave out `n` or send 1.", "n")
        prepared = await service.prepare_chat(self.context, chat, streamed=True)
        events = service.stream_chat(self.context, prepared)
        try:
            async for event in events:
                if self.cancelled:
                    raise asyncio.CancelledError
                if isinstance(event, ChatDelta):
                    self.context.mark_first_token()
                    self.transcript.append(event.text)
                    self.writer.add(chunk_event(event.delta))
                elif isinstance(event, ChatFailed):
                    await self.fail(from_provider_error(event.error))
                    return
                else:
                    await self.writer.finish(self.done_event(event.finish_reason))
                    self.context.succeed()
                    return
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        await self.fail(from_provider_error(NO_OUTPUT))

    def done_event(self, finish_reason: str) -> dict[str, Any]:
        """The final event; without `content` when the answer would not fit in an
        event (the chunks carried every delta)."""
        model = self.context.outcome.model
        assert model is not None
        event = {
            "type": "done",
            "content": "".join(self.transcript),
            "finish_reason": finish_reason,
            "usage": self.context.outcome.usage.as_dict(),
            "cost_usd": f"{self.context.outcome.usage.cost_usd:.6f}",
            "model": model.model_id,
            "tier": model.tier,
            "request_id": self.context.request_id,
            "route_reason": self.context.plan.reason if self.context.plan else "",
        }
        if not fits(event):
            del event["content"]
            event["content_truncated"] = True
        return event


async def run_to_end(future: asyncio.Future[Any]) -> bool:
    """Wait for `future` to finish, through cancellations of the waiting task
    (never passed on to it); whether the waiting task was cancelled meanwhile."""
    interrupted = False
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            interrupted = True
    return interrupted


# Completions whose socket dropped run on; a reference keeps their tasks alive.
RUNNING: set[asyncio.Task[None]] = set()


async def shutdown() -> None:
    """Stop the process's running completions, each ending its stream with a
    `cancelled` error event (called by the ASGI lifespan)."""
    tasks = list(RUNNING)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class ChatCompletionsConsumer(StreamConsumer):
    """/ws/v1/chat/completions: one request message in, its completion's events out."""

    purpose = "chat.completions"
    completion: ChatCompletion | None = None

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        if self.completion is None:
            self.start(text.encode() if text is not None else message.get("bytes") or b"")
        elif text is not None and is_cancel(text):
            self.completion.cancel()

    def start(self, body: bytes) -> None:
        stream_id = new_stream_id("chat")
        outbox = new_outbox(self.principal, stream_id)
        self.completion = ChatCompletion(self.principal.api_key, self.principal.schema_name, stream_id, body)
        self.start_sending(outbox)
        self.completion.start(outbox.offer)
        assert self.completion.task is not None
        self.completion.task.add_done_callback(functools.partial(self.completion_ended, outbox))

    def completion_ended(self, outbox: Outbox, task: asyncio.Task[None]) -> None:
        """A completion that ended without publishing its final event (Redis lost,
        cancelled before it ran) fails the socket: its reader would wait forever.
        A published final one reaches the reader from the log, however far behind."""
        if not task.cancelled():
            task.exception()  # retrieved: logged by the completion itself
        assert self.completion is not None
        if not outbox.cursor.finished and not self.completion.final_published:
            self.local.put_nowait({"type": "socket.failed"})

    async def socket_failed(self, message: dict[str, Any]) -> None:
        await self.close(CLOSE_INTERNAL_ERROR)

    async def on_disconnect(self) -> None:
        if self.completion is not None:
            self.completion.detach()


def is_cancel(text: str) -> bool:
    with contextlib.suppress(orjson.JSONDecodeError):
        return bool(orjson.loads(text) == {"type": "cancel"})
    return False
