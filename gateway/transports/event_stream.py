"""A chat stream served as another API's server-sent events (Anthropic's Messages,
OpenAI's Responses): the lifecycle they share, their encodings their own.

As for chat completions, the response head waits for the first delta, so a
failure before any output is an ordinary error response with its status; after
it, deltas are relayed until the API's final event (or its error event). A client
that hangs up cancels the upstream call, and the request is settled whatever
happens (a transcript kept for tenants that log requests).
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway import service
from gateway.errors import NO_OUTPUT, GatewayError, client_disconnected, from_provider_error
from gateway.events import ChatDelta, ChatFailed
from gateway.service import RequestContext
from gateway.transports.http import cancel_on_disconnect


class EventStreamResponse(Response):
    def __init__(self, context: RequestContext, prepared: service.PreparedChat) -> None:
        super().__init__()
        self.context = context
        self.events = service.stream_chat(context, prepared)
        self.transcript: list[str] = []
        self.model = ""  # the model id of the last delta or outcome

    def error_response(self, error: GatewayError) -> Response:
        """The API's error response, for a failure before any output."""
        raise NotImplementedError

    def headers_of_the_api(self) -> dict[str, str]:
        return {}

    def opening(self) -> bytes:
        """The events before the first delta's (`self.model` is set)."""
        raise NotImplementedError

    def encode_delta(self, delta: dict[str, Any]) -> bytes:
        raise NotImplementedError

    async def relay(self, send: Send) -> None:
        """The events after the first delta, ending with the API's last one."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.context.fail(client_disconnected())  # until it ends otherwise
        try:
            first = await anext(self.events, None)
            if not isinstance(first, ChatDelta):
                error = from_provider_error(first.error if isinstance(first, ChatFailed) else NO_OUTPUT)
                self.context.fail(error, answered=True)
                await self.error_response(error)(scope, receive, send)
                return
            self.context.mark_first_token()
            self.model = first.model.model_id
            await send({"type": "http.response.start", "status": 200, "headers": self.head()})
            await send(
                {"type": "http.response.body", "body": self.opening() + self.encode(first), "more_body": True}
            )
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_on_disconnect, receive, group.cancel_scope)
                await self.relay(send)
                group.cancel_scope.cancel()
        finally:
            await self.events.aclose()  # type: ignore[attr-defined]
            if self.transcript:
                self.context.response_text = self.context.response_text or "".join(self.transcript)
            await self.context.settle()

    def head(self) -> list[tuple[bytes, bytes]]:
        fields = {
            **self.context.headers(),
            **self.headers_of_the_api(),
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
        }
        return [(name.encode(), value.encode()) for name, value in fields.items()]

    def encode(self, delta: ChatDelta) -> bytes:
        if self.context.logs_requests:
            self.transcript.append(delta.text)
        return self.encode_delta(delta.delta)
