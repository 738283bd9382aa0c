"""The OpenAI-compatible /v1 API over HTTP: a lean ASGI app beside Django
(docs/decisions/0005), a transport over the chat service (gateway/service.py).

Every response carries x-request-id, x-aiaas-overhead-ms (time in the gateway
minus time waiting on providers), x-aiaas-model and x-aiaas-tier (what
actually served it) and x-aiaas-route-reason. Every error is OpenAI-shaped.

Edge policy (docs/compatibility.md): a request carrying more than one
Authorization header is refused with 401, as /api refuses it; a body must be
sent as JSON: Content-Type absent, application/json (or any +json type) or
text/plain, else 415.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

import anyio
import orjson
import redis.asyncio as aioredis
from django.conf import settings
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from aiaas import logs
from gateway import service
from gateway.auth import authenticate
from gateway.errors import NO_OUTPUT, GatewayError, client_disconnected, from_provider_error, invalid
from gateway.events import ChatDelta, ChatEvent, ChatFailed
from gateway.idempotency import IdempotencyStore, idempotent
from gateway.service import RequestContext, client_request_id, close_loop_clients, loop_clients
from gateway.transports.cors import CorsMiddleware
from gateway.validation import parse_chat_request, parse_embeddings_request, parse_json_object
from realtime.stream_access import access_to, require_scope
from realtime.tokens import InvalidTokenRequestError, claims_for, mint_stream_token
from routing.catalog import ModelSpec
from routing.models import ROUTED_MODEL
from routing.router import outcomes as router_outcomes
from tenants.models import ApiKey, ApiKeyScope

# OpenAI's `created` for a model; the registry does not track release dates.
MODEL_CREATED = 1_700_000_000
# Content types a JSON body may be labelled with; curl and some clients send text/plain.
JSON_CONTENT_TYPES = frozenset({"", "application/json", "text/plain"})


async def shutdown() -> None:
    """Close the connections this process holds (called by the ASGI lifespan)."""
    await close_loop_clients()


def idempotency_store() -> IdempotencyStore:
    """The store for the secret keys configured now (a rotation takes effect at once)."""
    return store_for_secrets(loop_clients().redis, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


@lru_cache(maxsize=4)
def store_for_secrets(client: aioredis.Redis, secret: str, fallbacks: tuple[str, ...]) -> IdempotencyStore:
    return IdempotencyStore(client, secret, fallbacks=fallbacks)


def json_response(
    data: Any, context: RequestContext, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status, {**context.headers(), **(headers or {})}, media_type="application/json"
    )


def error_response(error: GatewayError, context: RequestContext) -> Response:
    return json_response(error.body(), context, error.status, error.headers())


async def authorized(request: Request, context: RequestContext, scope: str) -> ApiKey:
    """The request's API key, with `scope`, recorded on its context."""
    if len(request.headers.getlist("authorization")) > 1:
        raise GatewayError(
            401,
            "Send one Authorization header, not several.",
            "invalid_request_error",
            "invalid_api_key",
        )
    header = request.headers.get("authorization", "")
    context.api_key = await authenticate(loop_clients().keys, header, scope)
    request.state.api_key = context.api_key  # whose origins CORS allows (gateway/transports/cors.py)
    return context.api_key


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 past MAX_REQUEST_BYTES (from Content-Length, or as
    it streams: it is never spooled), with 408 when it is not complete within
    REQUEST_BODY_TIMEOUT_SECONDS, and with 415 when it is not labelled JSON."""
    check_content_type(request.headers.get("content-type", ""))
    limit = settings.MAX_REQUEST_BYTES
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    timeout = settings.REQUEST_BODY_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(timeout):
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise too_large(limit)
    except TimeoutError:
        raise GatewayError(
            408,
            f"The request body did not arrive within {timeout:g} seconds.",
            "invalid_request_error",
            "request_timeout",
            closes_connection=True,
        ) from None
    return bytes(body)


def check_content_type(header: str) -> None:
    media_type = header.partition(";")[0].strip().lower()
    if media_type not in JSON_CONTENT_TYPES and not media_type.endswith("+json"):
        raise GatewayError(
            415,
            f"Unsupported Content-Type {media_type!r}: send the body as JSON (application/json).",
            "invalid_request_error",
            "unsupported_media_type",
        )


def too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"The request body exceeds {limit} bytes.",
        "invalid_request_error",
        "request_too_large",
        closes_connection=True,
    )


Handler = Callable[[Request, RequestContext], Awaitable[Response]]
Work = Callable[[RequestContext, bytes], Awaitable[Response]]


def endpoint(
    handler: Handler, render: Callable[[GatewayError, RequestContext], Response] = error_response
) -> Callable[[Request], Awaitable[Response]]:
    """Run `handler` in its request's lifecycle (gateway/service.py): every
    failure is an error response (OpenAI-shaped unless `render` says), and the
    request is settled."""

    async def respond(request: Request) -> Response:
        route = route_of(request)
        context = RequestContext.new(client_request_id(request.headers), endpoint=route)
        logs.bind(request_id=context.request_id, route=route)
        try:
            async with context.lifecycle():
                try:
                    response = await handler(request, context)
                except ClientDisconnect:
                    raise client_disconnected() from None
                context.succeed(response.status_code)
                return response
        except GatewayError as error:
            if error.error_type == "client_disconnected":
                return Response(status_code=499)
            return render(error, context)

    return respond


def route_of(request: Request) -> str:
    """The pattern of the route that matched (`/v1/models/{model_id:path}`), not the path."""
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def once(
    request: Request, context: RequestContext, api_key: ApiKey, body: bytes, work: Work
) -> Awaitable[Response]:
    """`work` at most once per tenant and Idempotency-Key (aiaas/idempotency/, gateway/idempotency.py)."""
    return idempotent(
        idempotency_store(),
        request,
        api_key.tenant_id,
        body,
        lambda: work(context, body),
        principal=f"api-key:{api_key.pk}",
        headers=context.headers,
    )


@endpoint
async def chat_completions(request: Request, context: RequestContext) -> Response:
    api_key = await authorized(request, context, ApiKeyScope.INFERENCE)
    return await once(request, context, api_key, await read_body(request), serve_chat)


async def serve_chat(context: RequestContext, body: bytes) -> Response:
    prepared = await service.prepare_chat(context, parse_chat_request(body))
    if prepared.streamed:
        return ChatStreamResponse(context, prepared)
    result = await service.complete_chat(context, prepared)
    return json_response(result.data, context)


@endpoint
async def embeddings(request: Request, context: RequestContext) -> Response:
    api_key = await authorized(request, context, ApiKeyScope.INFERENCE)
    return await once(request, context, api_key, await read_body(request), serve_embeddings)


async def serve_embeddings(context: RequestContext, body: bytes) -> Response:
    data = await service.embed(context, parse_embeddings_request(body))
    return json_response(data, context)


@endpoint
async def feedback(request: Request, context: RequestContext) -> Response:
    """A user's verdict on an `auto`-routed answer: what the router learns from
    (routing/router/outcomes.py). One verdict per request."""
    api_key = await authorized(request, context, ApiKeyScope.INFERENCE)
    body = parse_json_object(await read_body(request))
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise invalid(
            "`request_id` must be the x-request-id of a routed request.", "request_id", "invalid_type"
        )
    rating = body.get("rating")
    if rating not in FEEDBACK_RATINGS:
        raise invalid('`rating` must be "good" or "bad".', "rating", "invalid_value")
    try:
        await router_outcomes.record_feedback(
            loop_clients().redis, api_key.tenant_id, request_id, rating == "good"
        )
    except router_outcomes.FeedbackError as error:
        raise GatewayError(
            error.status, error.message, "invalid_request_error", error.code, "request_id"
        ) from None
    return json_response({"object": "feedback", "request_id": request_id, "rating": rating}, context)


FEEDBACK_RATINGS = ("good", "bad")


async def models_of(api_key: ApiKey) -> list[ModelSpec]:
    """The catalog models `api_key` may use, cheapest first (`auto` is not one)."""
    catalog = await loop_clients().catalog.get()
    return [model for model in catalog.by_cost if api_key.allows_model(model.model_id)]


async def model_of(api_key: ApiKey, model_id: str) -> ModelSpec | None:
    return next((model for model in await models_of(api_key) if model.model_id == model_id), None)


def model_not_found(model_id: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model '{model_id}' does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
        "model",
    )


@endpoint
async def list_models(request: Request, context: RequestContext) -> Response:
    api_key = await authorized(request, context, ApiKeyScope.INFERENCE)
    data = [ROUTED_MODEL_OBJECT, *(model_object(model) for model in await models_of(api_key))]
    return json_response({"object": "list", "data": data}, context)


@endpoint
async def retrieve_model(request: Request, context: RequestContext) -> Response:
    """One model of GET /v1/models; 404 in OpenAI's shape for a model unknown or not allowed to the key."""
    api_key = await authorized(request, context, ApiKeyScope.INFERENCE)
    model_id = request.path_params["model_id"]
    if model_id == ROUTED_MODEL:
        return json_response(ROUTED_MODEL_OBJECT, context)
    model = await model_of(api_key, model_id)
    if model is None:
        raise model_not_found(model_id)
    return json_response(model_object(model), context)


def by_api(
    anthropic: Callable[[Request], Awaitable[Response]], openai: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """A route both SDKs call (GET /v1/models): answered in Anthropic's shape when the
    request sends `anthropic-version` (the anthropic SDK always does, OpenAI's never),
    else in OpenAI's."""

    async def respond(request: Request) -> Response:
        return await (anthropic if "anthropic-version" in request.headers else openai)(request)

    return respond


ROUTED_MODEL_OBJECT = {
    "id": ROUTED_MODEL,
    "object": "model",
    "created": MODEL_CREATED,
    "owned_by": "aiaas",
    "aiaas": {"routed": True},
}


def model_object(model: ModelSpec) -> dict[str, Any]:
    return {
        "id": model.model_id,
        "object": "model",
        "created": MODEL_CREATED,
        "owned_by": "aiaas-simulated" if model.provider.is_simulated else model.provider.slug,
        "aiaas": {
            "tier": model.tier,
            "simulated": model.provider.is_simulated,
            "context_window": model.context_window,
            "chat": model.supports_chat,
            "embeddings": model.supports_embeddings,
        },
    }


@endpoint
async def stream_tokens(request: Request, context: RequestContext) -> Response:
    """A short-lived, single-use token a browser opens one WebSocket with (realtime/tokens.py)."""
    api_key = await authorized(request, context, ApiKeyScope.INFERENCE)
    try:
        claims = claims_for(api_key, parse_json_object(await read_body(request)))
    except InvalidTokenRequestError as error:
        raise invalid(str(error), error.param) from None
    if claims.stream_id is not None:  # refused now rather than at a browser's handshake, which hides why
        require_scope(api_key, access_to(claims.stream_id))
    return json_response(await mint_stream_token(claims), context)


# The methods each /v1 path serves (HEAD and OPTIONS are not served).
ALLOWED_METHODS = {
    "/v1/models": "GET",
    "/v1/chat/completions": "POST",
    "/v1/messages": "POST",
    "/v1/messages/count_tokens": "POST",
    "/v1/responses": "POST",
    "/v1/responses/input_tokens": "POST",
    "/v1/embeddings": "POST",
    "/v1/feedback": "POST",
    "/v1/stream-tokens": "POST",
}


@endpoint
async def not_found(request: Request, context: RequestContext) -> Response:
    allowed = ALLOWED_METHODS.get(request.url.path.rstrip("/") or "/")
    if allowed is not None:
        error = GatewayError(
            405,
            f"{request.method} is not allowed here; use {allowed}.",
            "invalid_request_error",
            "method_not_allowed",
        )
        return json_response(error.body(), context, 405, {"allow": allowed})
    raise GatewayError(
        404, f"Unknown URL: {request.method} {request.url.path}", "invalid_request_error", "unknown_url"
    )


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return f"data: {data}\n\n".encode()


class ChatStreamResponse(Response):
    """Server-sent events for one chat completion.

    The response head waits for the first token, so a failure before any
    output is an ordinary HTTP error with a status code, and the headers name
    the model that actually answered. After that, a failure nobody could
    continue is an `error` event and the stream never ends with [DONE].
    """

    def __init__(self, context: RequestContext, prepared: service.PreparedChat) -> None:
        super().__init__()
        self.context = context
        self.events = service.stream_chat(context, prepared)
        self.include_usage = prepared.request.include_usage
        self.chunk_id = f"chatcmpl-{context.request_id}"
        self.transcript: list[str] = []
        self.created = int(time.time())
        self.started_choices: set[int] = set()  # choices whose first chunk (with the role) was sent

    def chunk(
        self,
        model: ModelSpec,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return sse(
            {
                "id": self.chunk_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": model.model_id,
                "choices": [choice],
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.context.fail(client_disconnected())  # until it ends otherwise
        try:
            first = await anext(self.events, None)
            if not isinstance(first, ChatDelta):
                error = from_provider_error(first.error if isinstance(first, ChatFailed) else NO_OUTPUT)
                self.context.fail(error, answered=True)
                await error_response(error, self.context)(scope, receive, send)
                return
            self.context.mark_first_token()
            headers = {
                **self.context.headers(),
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                }
            )
            await send({"type": "http.response.body", "body": self.encode(first), "more_body": True})
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_on_disconnect, receive, group.cancel_scope)
                await self.relay(send)
                group.cancel_scope.cancel()
        finally:
            await self.events.aclose()  # type: ignore[attr-defined]
            if self.transcript:
                self.context.response_text = self.context.response_text or "".join(self.transcript)
            await self.context.settle()

    def keep(self, event: ChatDelta) -> None:
        """The answer's text (its first choice), for tenants that log it."""
        if self.context.logs_requests and event.index == 0:
            self.transcript.append(event.text)

    async def relay(self, send: Send) -> None:
        async for event in self.events:
            body = self.encode(event)
            if isinstance(event, ChatFailed):
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send({"type": "http.response.body", "body": body, "more_body": True})
        self.context.succeed()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def encode(self, event: ChatEvent) -> bytes:
        """An event as SSE bytes; a failure is recorded on the context (the stream
        had started: its status stays 200)."""
        if isinstance(event, ChatDelta):
            self.keep(event)
            delta = event.delta
            if event.index not in self.started_choices:
                self.started_choices.add(event.index)
                delta = {"role": "assistant", **delta}
            return self.chunk(event.model, delta, None, event.index, event.logprobs)
        if isinstance(event, ChatFailed):
            error = from_provider_error(event.error)
            self.context.status, self.context.error_type = 200, error.error_type
            return sse(error.body())
        model = self.context.outcome.model
        assert model is not None
        finishes = event.finish_reasons or ((0, event.finish_reason),)
        body = b"".join(self.chunk(model, {}, reason, index) for index, reason in finishes)
        if self.include_usage:
            body += sse(
                {
                    "id": self.chunk_id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": model.model_id,
                    "choices": [],
                    "usage": self.context.outcome.usage.as_dict(),
                }
            )
        return body + sse("[DONE]")


async def cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """A client that goes away stops the upstream call too."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def create_app() -> Starlette:
    from gateway.transports import anthropic, responses  # they build on this module's helpers

    return Starlette(
        routes=[
            Route("/v1/models", by_api(anthropic.list_models, list_models), methods=["GET"]),
            Route(
                "/v1/models/{model_id:path}",
                by_api(anthropic.retrieve_model, retrieve_model),
                methods=["GET"],
            ),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/messages", anthropic.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", anthropic.count_tokens, methods=["POST"]),
            Route("/v1/responses", responses.create_response, methods=["POST"]),
            Route("/v1/responses/input_tokens", responses.count_input_tokens, methods=["POST"]),
            Route("/v1/responses/{response_id}", responses.retrieve_response, methods=["GET"]),
            Route("/v1/responses/{response_id}", responses.delete_response, methods=["DELETE"]),
            Route("/v1/responses/{response_id}/input_items", responses.list_input_items, methods=["GET"]),
            Route("/v1/feedback", feedback, methods=["POST"]),
            Route("/v1/stream-tokens", stream_tokens, methods=["POST"]),
            Route(
                "/v1/{path:path}",
                not_found,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
            ),
        ]
    )


application = CorsMiddleware(create_app())
