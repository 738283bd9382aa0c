"""One chat completion served over a WebSocket, through the gateway's own code.

Validation, routing, limits and budget (`prepare_chat`), the provider calls
with retries, fallbacks and mid-stream failover (`state.orchestrator.stream`),
and the usage ledger and request logs (`Context.settle`) are the /v1 HTTP
endpoint's; only the transport differs. Every event is published to the
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
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from django.conf import settings

from gateway.errors import GatewayError, from_provider_error
from gateway.providers.client import ProviderError
from gateway.transports.http import INTERNAL_ERROR, TOO_LONG, Context, prepare_chat, state
from realtime.streams import StreamEvent, apublish
from tenants.models import ApiKey

logger = logging.getLogger(__name__)
CANCELLED = GatewayError(499, "The client cancelled the request.", "invalid_request_error", "cancelled")

Deliver = Callable[[StreamEvent], None]
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
        self.context = Context(f"req_{uuid.uuid4().hex}")
        self.context.api_key = api_key
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
        status, error_type = 500, "internal_error"
        try:
            if self.cancelled:
                raise asyncio.CancelledError
            status, error_type = await self.serve()
        except GatewayError as error:
            status, error_type = await self.fail(error)
        except (ProviderError, TimeoutError) as error:
            status, error_type = await self.fail(
                from_provider_error(error if isinstance(error, ProviderError) else TOO_LONG)
            )
        except asyncio.CancelledError:
            status, error_type = await self.fail(CANCELLED)
        except Exception:
            logger.exception("websocket chat completion %s failed", self.context.request_id)
            with contextlib.suppress(Exception):
                await self.fail(INTERNAL_ERROR)
        finally:
            if self.context.logs_requests:
                self.context.response_text = self.context.response_text or "".join(self.transcript)
            # A final event on its way to the log, and the settle (ledger, request log,
            # limits), run to their end even when the task is cancelled meanwhile
            # (the server's shutdown); the cancellation is raised after them.
            interrupted = False
            if self.writer.final_queued:
                interrupted = await run_to_end(self.writer.task)
            self.writer.task.cancel()
            settling = asyncio.ensure_future(self.context.settle(status, error_type))
            interrupted = await run_to_end(settling) or interrupted
            settling.result()
            if interrupted:
                raise asyncio.CancelledError

    async def fail(self, error: GatewayError) -> tuple[int, str]:
        await self.writer.finish(error_event(error))
        return error.status, error.code or error.type

    async def serve(self) -> tuple[int, str]:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if len(self.body) > limit:
            raise GatewayError(
                413, f"The request body exceeds {limit} bytes.", "invalid_request_error", "request_too_large"
            )
        chat, plan, deadline = await prepare_chat(self.context, self.api_key, self.body, streamed=True)
        events = state.orchestrator.stream(chat.body, plan, deadline, self.context.outcome)
        try:
            async for event in events:
                if self.cancelled:
                    raise asyncio.CancelledError
                if "delta" in event:
                    self.context.first_token_at = self.context.first_token_at or time.perf_counter()
                    self.transcript.append(event["delta"].get("content") or "")
                    self.writer.add(chunk_event(event["delta"]))
                elif "error" in event:
                    return await self.fail(from_provider_error(event["error"]))
                else:
                    await self.writer.finish(self.done_event(event["finish_reason"]))
                    return 200, ""
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        return await self.fail(from_provider_error(ProviderError("stream_cut", "no output")))

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
