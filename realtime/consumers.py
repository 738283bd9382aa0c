"""The WebSocket consumers' base and /ws/v1/streams/<stream_id> (the chat
completions socket, gateway/transports/websocket.py, is built on the same base).

Each authorizes the handshake before accepting it (realtime/handshake.py; a
stream needs what the REST resource behind it needs, realtime/stream_access.py;
a refusal is an HTTP error answer to the handshake, never an accepted socket),
then send one stream's events through a bounded Outbox (realtime/outbox.py)
from a sender task, so no handler ever waits on a slow reader.

Close codes (docs/realtime.md): 1000 after the stream's final event; 4008 when
the reader took nothing for REALTIME_STALLED_READER_SECONDS; 4410 when the
events after the reader's position are no longer retained; 1011 when the
server failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from typing import Any

import orjson
from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer
from channels.utils import await_many_dispatch
from django.conf import settings

from aiaas.observability.metrics import WEBSOCKET_CONNECTIONS, WEBSOCKET_SEND_ERRORS
from gateway.errors import GatewayError, invalid
from realtime.connections import TooManySocketsError, socket_lease
from realtime.events import error_event
from realtime.handshake import HandshakeRefusedError, Principal, authorize, query_parameters
from realtime.outbox import Outbox
from realtime.stream_access import CHAT_ACCESS, StreamAccess, access_to
from realtime.streams import (
    Cursor,
    StreamEvent,
    StreamGapError,
    alast,
    channel_layer,
    group_name,
    is_stream_id,
)

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_INTERNAL_ERROR = 1011
CLOSE_STALLED_READER = 4008
CLOSE_EXPIRED = 4410
# How long a close frame may wait behind a stalled reader's unread bytes.
CLOSE_SECONDS = 5.0
RETRY_SOCKET_SECONDS = 5
AFTER_PATTERN = re.compile(r"[0-9]{1,18}")


class StreamConsumer(AsyncConsumer):
    """A socket that sends one stream: handshake authorization, the outbox and its sender."""

    purpose = ""
    uses_groups = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # AsyncConsumer's loop, plus a queue of our own so the sender can end the
        # consumer even when a stalled reader keeps the close frame from leaving.
        self.scope = scope
        self.local: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.base_send = send
        self.channel_layer = None
        self.tasks: list[asyncio.Task[None]] = []
        self.accepted = False
        self.held = contextlib.AsyncExitStack()  # the socket's lease, released when it ends
        sources = [receive, self.local.get]
        if self.uses_groups:
            self.channel_layer = channel_layer()
            self.channel_name = await self.channel_layer.new_channel()
            sources.append(functools.partial(self.channel_layer.receive, self.channel_name))
        try:
            with contextlib.suppress(StopConsumer):
                await await_many_dispatch(sources, self.dispatch)
        except Exception:
            if not self.accepted:
                raise  # before accept: the server answers the handshake with a 500
            logger.exception("websocket consumer failed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.send({"type": "websocket.close", "code": CLOSE_INTERNAL_ERROR}), 1
                )
        finally:
            # However the consumer ends (a handler's exception included), its socket is no longer counted.
            if self.accepted:
                self.accepted = False
                WEBSOCKET_CONNECTIONS.dec()
            for task in self.tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await self.held.aclose()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # No per-message database housekeeping (AsyncConsumer's): handlers use no connection here.
        await getattr(self, get_handler_name(message))(message)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        try:
            self.check_query()  # before authorizing: a malformed query does not spend a token
            self.principal = await authorize(
                self.scope, self.purpose, self.stream_id_from_url(), self.access()
            )
            await self.check_request()
            await self.hold_lease()
        except HandshakeRefusedError as refusal:
            await self.refuse(refusal.error)
            raise StopConsumer() from None
        await self.send({"type": "websocket.accept"})
        self.accepted = True
        WEBSOCKET_CONNECTIONS.inc()
        await self.on_accept()

    async def hold_lease(self) -> None:
        """One of the tenant's REALTIME_MAX_SOCKETS_PER_TENANT open sockets, or a 429."""
        try:
            await self.held.enter_async_context(socket_lease(self.principal.api_key.tenant_id))
        except TooManySocketsError as error:
            raise HandshakeRefusedError(
                GatewayError(
                    429,
                    f"Your organization has too many open WebSockets ({error}).",
                    "rate_limit_error",
                    "too_many_sockets",
                    retry_after=RETRY_SOCKET_SECONDS,
                )
            ) from None

    def stream_id_from_url(self) -> str | None:
        return None

    def access(self) -> StreamAccess:
        """What the socket's key must be allowed (realtime/stream_access.py)."""
        return CHAT_ACCESS

    def check_query(self) -> None:
        """Refuse a malformed handshake query (HandshakeRefusedError), before authorization."""

    async def check_request(self) -> None:
        """Refuse a handshake the principal may not open (HandshakeRefusedError)."""

    async def on_accept(self) -> None:
        pass

    async def refuse(self, error: GatewayError) -> None:
        """Answer the handshake with an HTTP error (ASGI's denial response where the
        server offers it, else a plain close, which servers send as 403)."""
        if "websocket.http.response" not in self.scope.get("extensions", {}):
            await self.send({"type": "websocket.close"})
            return
        headers = [
            (b"content-type", b"application/json"),
            *[(k.encode(), v.encode()) for k, v in error.headers().items()],
        ]
        await self.send({"type": "websocket.http.response.start", "status": error.status, "headers": headers})
        await self.send({"type": "websocket.http.response.body", "body": orjson.dumps(error.body())})

    def start_sending(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.tasks.append(asyncio.get_running_loop().create_task(self.send_all(outbox)))
        self.tasks.append(asyncio.get_running_loop().create_task(outbox.refill()))

    async def send_all(self, outbox: Outbox) -> None:
        """The sender: the outbox's messages in order, each within the stall limit."""
        try:
            while (message := await outbox.get()) is not None:
                if not await self.send_text(orjson.dumps(message).decode()):
                    return
            await self.close(CLOSE_NORMAL)
        except StreamGapError as gap:
            error = GatewayError(410, str(gap), "invalid_request_error", "stream_expired")
            # Not a logged event: its seq is the last one this socket delivered (the reader's position).
            event = {
                **error_event(error),
                "stream_id": outbox.cursor.stream_id,
                "seq": outbox.cursor.position,
            }
            if await self.send_text(orjson.dumps(event).decode()):
                await self.close(CLOSE_EXPIRED)
        except Exception:
            logger.exception("websocket sender failed")
            await self.close(CLOSE_INTERNAL_ERROR)

    async def send_text(self, text: str) -> bool:
        """Send one message; False (and the socket closing) if it failed or stalled."""
        try:
            await self.send_unless_stalled({"type": "websocket.send", "text": text})
        except TimeoutError:
            WEBSOCKET_SEND_ERRORS.inc()
            await self.close(CLOSE_STALLED_READER)
            return False
        except OSError:  # the client went away (uvicorn's ClientDisconnected)
            WEBSOCKET_SEND_ERRORS.inc()
            await self.stop()
            return False
        return True

    async def send_unless_stalled(self, message: dict[str, Any]) -> None:
        """Send, waiting as long as the reader keeps taking bytes; TimeoutError once it
        took none for REALTIME_STALLED_READER_SECONDS.

        uvicorn's send waits while the transport's buffer is above its high-water
        mark and resumes only below the low-water mark, so a slow but steady reader
        can keep one send waiting for long. Where the server's transport is
        reachable (uvicorn), its draining buffer counts as progress; elsewhere the
        send itself must finish within the limit.
        """
        limit = settings.REALTIME_STALLED_READER_SECONDS
        sending = asyncio.ensure_future(self.send(message))
        buffered, progress_at = self.write_buffer_size(), time.monotonic()
        try:
            while not (await asyncio.wait({sending}, timeout=min(1.0, limit)))[0]:
                now_buffered = self.write_buffer_size()
                if now_buffered is not None and buffered is not None and now_buffered < buffered:
                    progress_at = time.monotonic()
                buffered = now_buffered
                if time.monotonic() - progress_at >= limit:
                    raise TimeoutError
        finally:
            sending.cancel()
        sending.result()

    def transport(self) -> Any:
        """The server's transport (uvicorn's), where reachable."""
        return getattr(getattr(self.base_send, "__self__", None), "transport", None)

    def write_buffer_size(self) -> int | None:
        transport = self.transport()
        return transport.get_write_buffer_size() if transport is not None else None

    async def close(self, code: int) -> None:
        """Close with `code`; if the close frame cannot leave, end the consumer anyway.
        A stalled reader's connection (4008) is then dropped, and its buffer with it:
        the server's own close would wait for that buffer to drain, forever. Other
        codes leave the buffer to drain (a slow reader still gets the final event)."""
        try:
            await asyncio.wait_for(self.send({"type": "websocket.close", "code": code}), CLOSE_SECONDS)
        except TimeoutError:
            transport = self.transport()
            if code == CLOSE_STALLED_READER and transport is not None:
                transport.abort()
        except (OSError, RuntimeError):
            pass
        await self.stop()

    async def stop(self) -> None:
        await self.local.put({"type": "websocket.disconnect", "code": CLOSE_NORMAL})

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        pass

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        await self.on_disconnect()
        raise StopConsumer()

    async def on_disconnect(self) -> None:
        pass


def new_outbox(principal: Principal, stream_id: str, after: int = 0) -> Outbox:
    return Outbox(
        Cursor(principal.schema_name, stream_id, after),
        max_messages=settings.REALTIME_SEND_QUEUE_MESSAGES,
        max_bytes=settings.REALTIME_SEND_QUEUE_BYTES,
    )


class StreamsConsumer(StreamConsumer):
    """/ws/v1/streams/<stream_id>?after=<seq>: the stream's events after `after`, then live ones."""

    purpose = "streams"
    uses_groups = True

    def stream_id_from_url(self) -> str:
        return str(self.scope["url_route"]["kwargs"]["stream_id"])

    def access(self) -> StreamAccess:
        return access_to(self.stream_id_from_url())

    def check_query(self) -> None:
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        after = query_parameters(self.scope).get("after", "0")
        if not AFTER_PATTERN.fullmatch(after):
            raise HandshakeRefusedError(invalid("`after` must be a non-negative integer seq.", "after"))
        self.after = int(after)

    async def check_request(self) -> None:
        # Another tenant's stream is simply not in this tenant's namespace: the same 404.
        stream_id = self.stream_id_from_url()
        last = await alast(self.principal.schema_name, stream_id) if is_stream_id(stream_id) else None
        if last is None:
            raise HandshakeRefusedError(
                GatewayError(404, "No such stream.", "invalid_request_error", "stream_not_found", "stream_id")
            )
        if self.after > last.seq:
            raise HandshakeRefusedError(
                invalid(f"`after` is above the stream's last seq ({last.seq}).", "after")
            )
        self.last = last

    async def on_accept(self) -> None:
        assert self.channel_layer is not None
        last = self.last
        if last.final and last.seq <= self.after:
            await self.close(CLOSE_NORMAL)  # the reader has seen the end already
            return
        self.group = group_name(self.principal.schema_name, self.stream_id_from_url())
        # Join before the outbox first reads the log: nothing published meanwhile is missed.
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.start_sending(new_outbox(self.principal, self.stream_id_from_url(), self.after))

    async def stream_event(self, message: dict[str, Any]) -> None:
        self.outbox.offer(
            StreamEvent(
                message["stream_id"], int(message["seq"]), dict(message["event"]), bool(message["final"])
            )
        )

    async def on_disconnect(self) -> None:
        if self.channel_layer is not None and hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)


class NotFoundConsumer(StreamConsumer):
    """Any other WebSocket path: refused with 404 before accept."""

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.refuse(GatewayError(404, "Unknown WebSocket URL.", "invalid_request_error", "unknown_url"))
        raise StopConsumer()
