"""The OpenAI-compatible /v1 API: a lean ASGI app beside Django (docs/decisions/0005).

Every response carries x-request-id, x-aiaas-overhead-ms (time in the gateway
minus time waiting on providers), x-aiaas-model and x-aiaas-tier (what
actually served it) and x-aiaas-route-reason. Every error is OpenAI-shaped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import anyio
import orjson
import redis.asyncio as aioredis
from django.conf import settings
from django.utils import timezone
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from billing.limits import Limiter
from billing.usage import UsageQueueUnavailableError, UsageRecord, record_usage
from gateway.auth import ApiKeyCache
from gateway.errors import GatewayError, from_provider_error
from gateway.idempotency import IdempotencyStore, idempotent
from gateway.metering import Meter
from gateway.orchestrator import Orchestrator, Outcome, sse
from gateway.providers.client import ProviderClient, ProviderError
from gateway.resilience import CircuitBreaker, Deadline
from gateway.validation import (
    ChatRequest,
    invalid,
    parse_chat_request,
    parse_embeddings_request,
    parse_json_object,
)
from realtime.tokens import InvalidTokenRequestError, claims_for, mint_stream_token
from request_logs.services import RequestLogQueueUnavailableError, answer_text, queue_request_log
from routing.catalog import Catalog, CatalogCache, ModelSpec
from routing.models import ROUTED_MODEL
from routing.policy import NoCapableModelError, RoutePlan, RouteRequest, RoutingPolicy
from routing.router import outcomes as router_outcomes
from routing.router.cache import RouterConfigCache
from routing.router.early_exit import Acceptance, InvalidSchemaError, acceptance
from routing.router.features import output_format, prompt_of
from routing.router.policy import LearnedRouter, RoutedPlan
from tenants.models import ApiKey, ApiKeyScope

CLIENT_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REDIS_POOL_SIZE = 200
logger = logging.getLogger(__name__)
# OpenAI's `created` for a model; the registry does not track release dates.
MODEL_CREATED = 1_700_000_000


class GatewayState:
    """The process's long-lived clients, created on the first request (inside the event loop)."""

    policy: RoutingPolicy = LearnedRouter()

    @cached_property
    def redis(self) -> aioredis.Redis:
        # A blocking pool waits for a free connection instead of failing past its size.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=REDIS_POOL_SIZE,
            timeout=2,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        return aioredis.Redis(connection_pool=pool)

    @cached_property
    def keys(self) -> ApiKeyCache:
        return ApiKeyCache(self.redis)

    @cached_property
    def catalog(self) -> CatalogCache:
        return CatalogCache()

    @cached_property
    def router_configs(self) -> RouterConfigCache:
        return RouterConfigCache(self.redis)

    @cached_property
    def idempotency(self) -> IdempotencyStore:
        return IdempotencyStore(self.redis, settings.SECRET_KEY)

    @cached_property
    def limiter(self) -> Limiter:
        return Limiter(self.redis)

    @cached_property
    def orchestrator(self) -> Orchestrator:
        return Orchestrator(ProviderClient(), CircuitBreaker(self.redis))


state = GatewayState()


async def shutdown() -> None:
    """Close the connections this process holds (called by the ASGI lifespan)."""
    if "orchestrator" in state.__dict__:
        await state.orchestrator.providers.aclose()


@dataclass
class Context:
    """One request: its identity, clocks, what served it and what it cost."""

    request_id: str
    client_request_id: str = ""
    started: float = field(default_factory=time.perf_counter)
    outcome: Outcome = field(default_factory=Outcome)
    plan: RoutePlan | None = None
    accepts: Acceptance | None = None  # the request's JSON schema as a test of an answer (early exit)
    api_key: ApiKey | None = None
    meter: Meter | None = None
    first_token_at: float | None = None
    streaming: bool = False  # the response outlives the handler and settles itself
    settled: bool = False
    # For tenants that log prompts and outputs (request_logs): references, not copies.
    request_body: dict[str, Any] | None = None
    response_text: str = ""
    # The clients it runs on: the server's, or an in-process caller's own
    # (gateway/transports/inprocess.py), since they are bound to an event loop.
    gateway: GatewayState = field(default_factory=lambda: state)

    @classmethod
    def of(cls, request: Request) -> Context:
        # Our id is always ours: it keys the ledger, so a client must not choose it.
        given = request.headers.get("x-request-id", "")
        echo = given if CLIENT_REQUEST_ID_PATTERN.fullmatch(given) else ""
        return cls(f"req_{uuid.uuid4().hex}", echo)

    def headers(self) -> dict[str, str]:
        elapsed = time.perf_counter() - self.started
        overhead_ms = max(0.0, (elapsed - self.outcome.timing.waiting_seconds) * 1000)
        headers = {"x-request-id": self.request_id, "x-aiaas-overhead-ms": f"{overhead_ms:.2f}"}
        if self.client_request_id:
            headers["x-client-request-id"] = self.client_request_id
        if self.outcome.model is not None:
            headers["x-aiaas-model"] = self.outcome.model.model_id
            headers["x-aiaas-tier"] = str(self.outcome.model.tier)
        if self.plan is not None:
            headers["x-aiaas-route-reason"] = self.plan.reason
        if self.outcome.attempts:
            headers["x-aiaas-attempts"] = str(self.outcome.attempts)
        if self.meter is not None:
            headers.update(self.meter.headers)
        return headers

    async def admit(self, plan: RoutePlan, prompt_tokens: int, max_output_tokens: int) -> None:
        assert self.api_key is not None
        self.meter = Meter(self.gateway.limiter, self.api_key)
        await self.meter.admit(plan, prompt_tokens, max_output_tokens)

    async def settle(self, status: int, error_type: str = "") -> None:
        """Account for the request once it is over, whatever its outcome: reconcile
        its reservation and queue its one usage event (requests without a usable
        key belong to no tenant and are not metered)."""
        if self.settled:
            return
        self.settled = True
        if self.api_key is None:
            return
        # Independent Redis writes: one round trip of waiting instead of three.
        steps = [queue_usage(self.gateway.redis, self.usage_record(self.api_key, status, error_type))]
        if self.meter is not None:
            steps.append(self.meter.settle(self.outcome))
        if self.logs_requests:
            steps.append(self.queue_log(self.api_key, status))
        if isinstance(self.plan, RoutedPlan) and self.plan.decision is not None:
            steps.append(self.record_route(self.api_key, self.plan))
        await asyncio.gather(*steps)

    async def record_route(self, api_key: ApiKey, plan: RoutedPlan) -> None:
        """What the router learns from this request and reports about it (one Redis
        pipeline, concurrent with the other settlement writes)."""
        decision = plan.decision
        assert decision is not None
        usage, served, first = self.outcome.usage, self.outcome.model, plan.chain[0]
        first_failed = None  # judged only by early exit, and only when the first tier answered
        if decision.early_exit and self.outcome.rejected[:1] == [first]:
            first_failed = True
        elif decision.early_exit and served is first:
            first_failed = False
        outcome = router_outcomes.RequestOutcome(
            tenant_id=api_key.tenant_id,
            request_id=self.request_id,
            decision=decision,
            served_tier=served.tier if served else None,
            first_tier_failed=first_failed,
            cost_usd=usage.cost_usd,
            top_tier_cost_usd=plan.chain[-1].cost_usd(usage.prompt_tokens, usage.completion_tokens),
            expected_cost_usd=Decimal(str(decision.expected_cost_usd)),
            latency_ms=round((time.perf_counter() - self.started) * 1000),
        )
        try:
            await router_outcomes.record(self.gateway.redis, outcome)
        except aioredis.RedisError:
            logger.exception("the route of %s was not recorded", self.request_id)

    @property
    def logs_requests(self) -> bool:
        """The tenant keeps its prompts and outputs (the tenant is cached with the key)."""
        return self.api_key is not None and self.api_key.tenant.request_logging_enabled

    async def queue_log(self, api_key: ApiKey, status: int) -> None:
        body, model = self.request_body or {}, self.outcome.model
        try:
            await queue_request_log(
                self.gateway.redis,
                tenant_id=api_key.tenant_id,
                schema_name=api_key.tenant.schema_name,
                request_id=self.request_id,
                api_key_id=api_key.pk,
                model=model.model_id if model else str(body.get("model", "")),
                request_body=body,
                response_text=self.response_text,
                status=status,
                created_at=timezone.now(),
            )
        except RequestLogQueueUnavailableError:
            logger.exception("request log %s was not queued", self.request_id)

    def usage_record(self, api_key: ApiKey, status: int, error_type: str) -> UsageRecord:
        model, usage = self.outcome.model, self.outcome.usage
        ttft = None if self.first_token_at is None else round((self.first_token_at - self.started) * 1000)
        return UsageRecord(
            request_id=self.request_id,
            tenant_id=api_key.tenant_id,
            api_key_id=api_key.pk,
            model=model.model_id if model else "",
            tier=model.tier if model else None,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            latency_ms=round((time.perf_counter() - self.started) * 1000),
            ttft_ms=ttft,
            status=status,
            error_type=error_type[:100],
            estimated=usage.estimated,
            created_at=timezone.now(),
        )


async def queue_usage(redis: aioredis.Redis, record: UsageRecord) -> None:
    try:
        await record_usage(redis, record)
    except UsageQueueUnavailableError:
        # Limits fail closed before any provider call, so this is Redis lost mid-request.
        logger.exception("usage event %s was not queued", record.request_id)


def json_response(
    data: Any, context: Context, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status, {**context.headers(), **(headers or {})}, media_type="application/json"
    )


def error_response(error: GatewayError, context: Context) -> Response:
    if context.logs_requests:
        context.response_text = orjson.dumps(error.body()).decode()
    return json_response(error.body(), context, error.status, error.headers())


async def authenticate(request: Request, scope: str) -> ApiKey:
    return await authenticate_header(request.headers.get("authorization", ""), scope)


async def authenticate_header(header: str, scope: str) -> ApiKey:
    """The key an Authorization header carries, with `scope` (HTTP and WebSocket handshakes)."""
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


def plan_route(policy: RoutingPolicy, route: RouteRequest, catalog: Catalog, api_key: ApiKey) -> RoutePlan:
    try:
        return policy.plan(route, catalog, api_key.allows_model)
    except NoCapableModelError as error:
        raise invalid(str(error), "model", "model_not_capable") from None


def deadline_for(plan: RoutePlan) -> Deadline:
    return Deadline(max(model.provider.total_timeout for model in plan.chain))


def served_as(data: dict[str, Any], model: ModelSpec, object_id: str) -> dict[str, Any]:
    """The provider's response under our id and the public model id."""
    return {**data, "id": object_id, "model": model.model_id}


Handler = Callable[[Request, Context], Awaitable[Response]]
TOO_LONG = ProviderError("timeout", "the request took too long")
INTERNAL_ERROR = GatewayError(
    500, "The gateway failed to handle the request.", "server_error", "internal_error"
)
Work = Callable[[Context, ApiKey, bytes], Awaitable[Response]]


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Give `handler` its request context and turn every failure into an OpenAI-shaped error."""

    async def respond(request: Request) -> Response:
        context = Context.of(request)
        status, error_type = 500, "internal_error"
        try:
            response = await handler(request, context)
            status, error_type = response.status_code, ""
            return response
        except GatewayError as error:
            status, error_type = error.status, error.code or error.type
            return error_response(error, context)
        except (ProviderError, TimeoutError) as error:
            failure = from_provider_error(error if isinstance(error, ProviderError) else TOO_LONG)
            status, error_type = failure.status, failure.code or failure.type
            return error_response(failure, context)
        except ClientDisconnect:
            status, error_type = 499, "client_disconnected"
            return Response(status_code=499)
        except Exception:
            logger.exception("request %s failed", context.request_id)
            return error_response(INTERNAL_ERROR, context)
        finally:
            if not context.streaming:
                await context.settle(status, error_type)

    return respond


def once(
    request: Request, context: Context, api_key: ApiKey, body: bytes, handler: Work
) -> Awaitable[Response]:
    """`handler` at most once per tenant and Idempotency-Key (routing/idempotency.py)."""
    return idempotent(
        state.idempotency,
        request,
        api_key.tenant_id,
        body,
        lambda: handler(context, api_key, body),
        principal=f"api-key:{api_key.pk}",
        headers=context.headers,
    )


async def route_and_admit(context: Context, api_key: ApiKey, route: RouteRequest) -> RoutePlan:
    """The models that may serve `route`, once its limits and budget admit it."""
    catalog = await context.gateway.catalog.get()
    resolve_model(route.requested_model, catalog, api_key)
    plan = plan_route(context.gateway.policy, route, catalog, api_key)
    context.plan = plan
    await context.admit(plan, route.estimated_prompt_tokens, route.max_output_tokens)
    return plan


@endpoint
async def chat_completions(request: Request, context: Context) -> Response:
    api_key = context.api_key = await authenticate(request, ApiKeyScope.INFERENCE)
    return await once(request, context, api_key, await read_body(request), serve_chat)


async def prepare_chat(
    context: Context, api_key: ApiKey, body: bytes, *, streamed: bool | None = None
) -> tuple[ChatRequest, RoutePlan, Deadline]:
    """A chat request validated, routed and admitted (limits and budget), ready to run;
    shared by the HTTP endpoint, the WebSocket one (gateway/transports/websocket.py, which always
    streams: `streamed`, whatever the body says) and in-process callers."""
    chat = parse_chat_request(body)
    context.request_body = chat.body
    context.accepts = early_exit_test(chat.body)  # an invalid schema is the client's error, routed or not
    route = RouteRequest(
        chat.model,
        chat.estimated_prompt_tokens,
        chat.max_output_tokens,
        needs_json=chat.needs_json,
        prompt=prompt_of(chat.body["messages"]),
        output=output_format(chat.body.get("response_format")),
        stream=chat.stream if streamed is None else streamed,
        request_id=context.request_id,
        routing=await context.gateway.router_configs.get(api_key.tenant_id)
        if chat.model == ROUTED_MODEL
        else None,
    )
    plan = await route_and_admit(context, api_key, route)
    return chat, plan, deadline_for(plan)


def early_exit_test(body: dict[str, Any]) -> Acceptance | None:
    """Whether an answer follows the request's JSON schema (None without one; the
    compiled schema is cached)."""
    try:
        return acceptance(body)
    except InvalidSchemaError as error:
        raise invalid(
            f"`response_format.json_schema.schema` is not a valid JSON Schema: {error}",
            "response_format.json_schema.schema",
            "invalid_json_schema",
        ) from None


async def serve_chat(context: Context, api_key: ApiKey, body: bytes) -> Response:
    chat, plan, deadline = await prepare_chat(context, api_key, body)
    if chat.stream:
        context.streaming = True
        return ChatStreamResponse(context, chat.body, plan, deadline, chat.include_usage)
    data = await complete_chat(context, chat, plan, deadline)
    assert context.outcome.model is not None
    return json_response(served_as(data, context.outcome.model, f"chatcmpl-{context.request_id}"), context)


async def complete_chat(
    context: Context, chat: ChatRequest, plan: RoutePlan, deadline: Deadline
) -> dict[str, Any]:
    """A prepared, non-streamed chat request answered along its plan (early exit
    included); shared with in-process callers."""
    early_exit = isinstance(plan, RoutedPlan) and plan.decision is not None and plan.decision.early_exit
    data = await context.gateway.orchestrator.complete(
        chat.body, plan, deadline, context.outcome, context.accepts if early_exit else None
    )
    if context.logs_requests:
        context.response_text = answer_text(data)
    return data


@endpoint
async def embeddings(request: Request, context: Context) -> Response:
    api_key = context.api_key = await authenticate(request, ApiKeyScope.INFERENCE)
    return await once(request, context, api_key, await read_body(request), serve_embeddings)


async def serve_embeddings(context: Context, api_key: ApiKey, body: bytes) -> Response:
    embed = parse_embeddings_request(body)
    context.request_body = embed.body
    route = RouteRequest(embed.model, embed.estimated_prompt_tokens, 0, needs_embeddings=True)
    plan = await route_and_admit(context, api_key, route)
    data = await state.orchestrator.embed(embed.body, plan, deadline_for(plan), context.outcome)
    assert context.outcome.model is not None
    return json_response({**data, "model": context.outcome.model.model_id}, context)


@endpoint
async def feedback(request: Request, context: Context) -> Response:
    """A user's verdict on an `auto`-routed answer: what the router learns from
    (routing/router/outcomes.py). One verdict per request."""
    api_key = context.api_key = await authenticate(request, ApiKeyScope.INFERENCE)
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
        await router_outcomes.record_feedback(state.redis, api_key.tenant_id, request_id, rating == "good")
    except router_outcomes.FeedbackError as error:
        raise GatewayError(
            error.status, error.message, "invalid_request_error", error.code, "request_id"
        ) from None
    return json_response({"object": "feedback", "request_id": request_id, "rating": rating}, context)


FEEDBACK_RATINGS = ("good", "bad")


@endpoint
async def list_models(request: Request, context: Context) -> Response:
    api_key = context.api_key = await authenticate(request, ApiKeyScope.INFERENCE)
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
    data += [model_object(model) for model in catalog.by_cost if api_key.allows_model(model.model_id)]
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
async def stream_tokens(request: Request, context: Context) -> Response:
    """A short-lived, single-use token a browser opens one WebSocket with (realtime/tokens.py)."""
    api_key = context.api_key = await authenticate(request, ApiKeyScope.INFERENCE)
    try:
        claims = claims_for(api_key, parse_json_object(await read_body(request)))
    except InvalidTokenRequestError as error:
        raise invalid(str(error), error.param) from None
    return json_response(await mint_stream_token(state.redis, claims), context)


# The methods each /v1 path serves (HEAD and OPTIONS are not served).
ALLOWED_METHODS = {
    "/v1/models": "GET",
    "/v1/chat/completions": "POST",
    "/v1/embeddings": "POST",
    "/v1/feedback": "POST",
    "/v1/stream-tokens": "POST",
}


@endpoint
async def not_found(request: Request, context: Context) -> Response:
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
        self.transcript: list[str] = []
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
        self.status, self.error_type = 499, "client_disconnected"  # until it ends otherwise
        try:
            first = await anext(self.events, None)
            if first is None or "error" in first:
                error = from_provider_error(
                    first["error"] if first else ProviderError("stream_cut", "no output")
                )
                self.status, self.error_type = error.status, error.code or error.type
                await error_response(error, self.context)(scope, receive, send)
                return
            self.context.first_token_at = time.perf_counter()
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
            self.keep(first["delta"])
            first_chunk = self.chunk(first["model"], {"role": "assistant", **first["delta"]})
            await send({"type": "http.response.body", "body": first_chunk, "more_body": True})
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_on_disconnect, receive, group.cancel_scope)
                await self.relay(send)
                group.cancel_scope.cancel()
        finally:
            await self.events.aclose()  # type: ignore[attr-defined]
            if self.transcript:
                self.context.response_text = self.context.response_text or "".join(self.transcript)
            await self.context.settle(self.status, self.error_type)

    def keep(self, delta: dict[str, Any]) -> None:
        """The answer's text, for tenants that log it."""
        if self.context.logs_requests:
            self.transcript.append(delta.get("content") or "")

    async def relay(self, send: Send) -> None:
        async for event in self.events:
            if "delta" in event:
                self.keep(event["delta"])
                body = self.chunk(event["model"], event["delta"])
            elif "error" in event:
                error = from_provider_error(event["error"])
                self.status, self.error_type = 200, error.code or error.type
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
        self.status, self.error_type = 200, ""
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
            Route("/v1/feedback", feedback, methods=["POST"]),
            Route("/v1/stream-tokens", stream_tokens, methods=["POST"]),
            Route(
                "/v1/{path:path}",
                not_found,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
            ),
        ]
    )


application = create_app()
