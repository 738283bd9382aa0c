"""The OpenAI-compatible /v1 API: a lean ASGI app beside Django (docs/decisions/0005).

Every response carries x-request-id, x-aiaas-overhead-ms (time in the gateway
minus time waiting on providers), x-aiaas-model and x-aiaas-tier (what
actually served it) and x-aiaas-route-reason. Every error is OpenAI-shaped.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
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

from routing.catalog import Catalog, CatalogCache, ModelSpec
from routing.gateway.auth import ApiKeyCache
from routing.gateway.completions import Orchestrator, Outcome, sse
from routing.gateway.errors import GatewayError, from_provider_error
from routing.gateway.providers import ProviderClient, ProviderError
from routing.gateway.validation import invalid, parse_chat_request, parse_embeddings_request
from routing.models import ROUTED_MODEL
from routing.policy import CheapestCapableTier, NoCapableModelError, RoutePlan, RouteRequest, RoutingPolicy
from routing.resilience import CircuitBreaker, Deadline
from tenants.models import ApiKey, ApiKeyScope

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{8,128}")
# OpenAI's `created` for a model; the registry does not track release dates.
MODEL_CREATED = 1_700_000_000


class GatewayState:
    """The process's long-lived clients, created on the first request (inside the event loop)."""

    policy: RoutingPolicy = CheapestCapableTier()

    @cached_property
    def redis(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)

    @cached_property
    def keys(self) -> ApiKeyCache:
        return ApiKeyCache(self.redis)

    @cached_property
    def catalog(self) -> CatalogCache:
        return CatalogCache()

    @cached_property
    def orchestrator(self) -> Orchestrator:
        return Orchestrator(ProviderClient(), CircuitBreaker(self.redis))


state = GatewayState()


@dataclass
class Context:
    """One request's identity and clocks."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    outcome: Outcome = field(default_factory=Outcome)
    reason: str = ""

    @classmethod
    def of(cls, request: Request) -> Context:
        given = request.headers.get("x-request-id", "")
        return cls(given if REQUEST_ID_PATTERN.fullmatch(given) else f"req_{uuid.uuid4().hex}")

    def headers(self) -> dict[str, str]:
        elapsed = time.perf_counter() - self.started
        overhead_ms = max(0.0, (elapsed - self.outcome.timing.waiting_seconds) * 1000)
        headers = {"x-request-id": self.request_id, "x-aiaas-overhead-ms": f"{overhead_ms:.2f}"}
        if self.outcome.model is not None:
            headers["x-aiaas-model"] = self.outcome.model.model_id
            headers["x-aiaas-tier"] = str(self.outcome.model.tier)
        if self.reason:
            headers["x-aiaas-route-reason"] = self.reason
        if self.outcome.attempts:
            headers["x-aiaas-attempts"] = str(self.outcome.attempts)
        return headers


def json_response(
    data: Any, context: Context, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status, {**context.headers(), **(headers or {})}, media_type="application/json"
    )


def error_response(error: GatewayError, context: Context) -> Response:
    return json_response(error.body(), context, error.status, error.headers())


async def authenticate(request: Request, scope: str) -> ApiKey:
    header = request.headers.get("authorization", "")
    if not header:
        raise GatewayError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
            "invalid_request_error",
            "missing_api_key",
        )
    kind, _, raw_key = header.partition(" ")
    api_key = await state.keys.resolve(raw_key.strip()) if kind.lower() == "bearer" else None
    if api_key is None:
        raise GatewayError(
            401, "Incorrect, revoked or expired API key provided.", "invalid_request_error", "invalid_api_key"
        )
    if not api_key.has_scope(scope):
        raise GatewayError(
            403, f"This API key lacks the `{scope}` scope.", "permission_error", "insufficient_scope"
        )
    return api_key


async def read_body(request: Request) -> bytes:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise GatewayError(
            413, f"The request body exceeds {limit} bytes.", "invalid_request_error", "request_too_large"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise GatewayError(
                413, f"The request body exceeds {limit} bytes.", "invalid_request_error", "request_too_large"
            )
    return bytes(body)


def resolve_model(name: str, catalog: Catalog, api_key: ApiKey) -> None:
    """404 for an unknown model, 403 for one this key may not use."""
    if name == ROUTED_MODEL:
        return
    model = catalog.resolve(name)
    if model is None:
        raise GatewayError(
            404, f"The model `{name}` does not exist.", "invalid_request_error", "model_not_found", "model"
        )
    if not api_key.allows_model(model.model_id) and not api_key.allows_model(name):
        raise GatewayError(
            403,
            f"This API key may not use the model `{name}`.",
            "permission_error",
            "model_not_allowed",
            "model",
        )


def plan_route(route: RouteRequest, catalog: Catalog, api_key: ApiKey) -> RoutePlan:
    try:
        return state.policy.plan(route, catalog, api_key.allows_model)
    except NoCapableModelError as error:
        raise invalid(str(error), "model", "model_not_capable") from None


def deadline_for(plan: RoutePlan) -> Deadline:
    return Deadline(max(model.provider.total_timeout for model in plan.chain))


def served_as(data: dict[str, Any], model: ModelSpec, object_id: str) -> dict[str, Any]:
    """The provider's response under our id and the public model id."""
    return {**data, "id": object_id, "model": model.model_id}


Handler = Callable[[Request, Context], Awaitable[Response]]


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Give `handler` its request context and turn every failure into an OpenAI-shaped error."""

    async def respond(request: Request) -> Response:
        context = Context.of(request)
        try:
            return await handler(request, context)
        except GatewayError as error:
            return error_response(error, context)
        except ProviderError as error:
            return error_response(from_provider_error(error), context)
        except TimeoutError:
            timeout = ProviderError("timeout", "the request took too long")
            return error_response(from_provider_error(timeout), context)
        except ClientDisconnect:
            return Response(status_code=499)

    return respond


@endpoint
async def chat_completions(request: Request, context: Context) -> Response:
    api_key = await authenticate(request, ApiKeyScope.INFERENCE)
    chat = parse_chat_request(await read_body(request))
    catalog = await state.catalog.get()
    resolve_model(chat.model, catalog, api_key)
    route = RouteRequest(
        chat.model, chat.estimated_prompt_tokens, chat.max_output_tokens, needs_json=chat.needs_json
    )
    plan = plan_route(route, catalog, api_key)
    context.reason = plan.reason
    deadline = deadline_for(plan)
    if chat.stream:
        return ChatStreamResponse(context, chat.body, plan, deadline, chat.include_usage)
    data = await state.orchestrator.complete(chat.body, plan, deadline, context.outcome)
    assert context.outcome.model is not None
    return json_response(served_as(data, context.outcome.model, f"chatcmpl-{context.request_id}"), context)


@endpoint
async def embeddings(request: Request, context: Context) -> Response:
    api_key = await authenticate(request, ApiKeyScope.INFERENCE)
    embed = parse_embeddings_request(await read_body(request))
    catalog = await state.catalog.get()
    resolve_model(embed.model, catalog, api_key)
    route = RouteRequest(embed.model, embed.estimated_prompt_tokens, 0, needs_embeddings=True)
    plan = plan_route(route, catalog, api_key)
    context.reason = plan.reason
    data = await state.orchestrator.embed(embed.body, plan, deadline_for(plan), context.outcome)
    assert context.outcome.model is not None
    return json_response({**data, "model": context.outcome.model.model_id}, context)


@endpoint
async def list_models(request: Request, context: Context) -> Response:
    api_key = await authenticate(request, ApiKeyScope.INFERENCE)
    catalog = await state.catalog.get()
    data = [
        {
            "id": ROUTED_MODEL,
            "object": "model",
            "created": MODEL_CREATED,
            "owned_by": "aiaas",
            "aiaas": {"routed": True},
        }
    ]
    data += [model_object(model) for model in catalog.by_cost() if api_key.allows_model(model.model_id)]
    return json_response({"object": "list", "data": data}, context)


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
async def not_found(request: Request, context: Context) -> Response:
    raise GatewayError(
        404, f"Unknown URL: {request.method} {request.url.path}", "invalid_request_error", "unknown_url"
    )


class ChatStreamResponse(Response):
    """Server-sent events for one chat completion.

    The response head waits for the first token, so a failure before any
    output is an ordinary HTTP error with a status code, and the headers name
    the model that actually answered. After that, a failure nobody could
    continue is an `error` event and the stream never ends with [DONE].
    """

    def __init__(
        self, context: Context, body: dict[str, Any], plan: RoutePlan, deadline: Deadline, include_usage: bool
    ) -> None:
        super().__init__()
        self.context = context
        self.events = state.orchestrator.stream(body, plan, deadline, context.outcome)
        self.include_usage = include_usage
        self.chunk_id = f"chatcmpl-{context.request_id}"
        self.created = int(time.time())

    def chunk(self, model: ModelSpec, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse(
            {
                "id": self.chunk_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": model.model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            first = await anext(self.events, None)
            if first is None or "error" in first:
                error = first["error"] if first else ProviderError("stream_cut", "no output")
                await error_response(from_provider_error(error), self.context)(scope, receive, send)
                return
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
            first_chunk = self.chunk(first["model"], {"role": "assistant", **first["delta"]})
            await send({"type": "http.response.body", "body": first_chunk, "more_body": True})
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_on_disconnect, receive, group.cancel_scope)
                await self.relay(send)
                group.cancel_scope.cancel()
        finally:
            await self.events.aclose()  # type: ignore[attr-defined]

    async def relay(self, send: Send) -> None:
        async for event in self.events:
            if "delta" in event:
                body = self.chunk(event["model"], event["delta"])
            elif "error" in event:
                error = from_provider_error(event["error"])
                await send({"type": "http.response.body", "body": sse(error.body()), "more_body": False})
                return
            else:
                model = self.context.outcome.model
                assert model is not None
                body = self.chunk(model, {}, event["finish_reason"])
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
                body += sse("[DONE]")
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """A client that goes away stops the upstream call too."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/{path:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )


application = create_app()
