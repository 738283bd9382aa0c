"""The chat and embeddings service every transport runs on: validate (the
transport's parse), route, admit, call, settle.

HTTP (`gateway.transports.http`), WebSocket (`gateway.transports.websocket`)
and in-process callers (`gateway.transports.inprocess`: agent runs) hold a
`RequestContext` for each request and call `prepare_chat` / `complete_chat` /
`stream_chat` / `embed` with it. Whatever happens, the request is settled
once (`RequestContext.settle`): its reservation reconciled, its one usage
event queued, its request log and route outcome recorded. `lifecycle` is how
a transport runs a request: every failure comes out as a GatewayError (the
one error ladder, `gateway.errors.error_for`), and the settle happens on the
way out unless a stream settles itself later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import orjson
import redis.asyncio as aioredis
from django.conf import settings
from django.utils import timezone

from aiaas import tracing
from aiaas.observability import metrics
from aiaas.redis_clients import new_async_client
from billing.limits import Limiter
from billing.usage import UsageQueueUnavailableError, UsageRecord, record_usage
from capacity import effects, latency
from capacity import state as capacity_state
from capacity.levels import Level
from gateway import spool
from gateway.auth import ApiKeyCache, ensure_email_verified
from gateway.errors import GatewayError, cancelled, error_for, invalid
from gateway.events import ChatEvent
from gateway.metering import Meter
from gateway.orchestrator import Orchestrator, Outcome
from gateway.providers import ProviderClient
from gateway.resilience import CircuitBreaker, Deadline
from gateway.validation import ChatRequest, EmbeddingsRequest, validate_chat
from request_logs.services import RequestLogQueueUnavailableError, answer_text, queue_request_log
from routing.catalog import Catalog, CatalogCache, ModelSpec
from routing.models import ROUTED_MODEL
from routing.policy import NoCapableModelError, RoutePlan, RouteRequest, RoutingPolicy
from routing.router import outcomes as router_outcomes
from routing.router.adaptation import at_target
from routing.router.cache import RouterConfigCache
from routing.router.config import TenantRouterConfig
from routing.router.early_exit import Acceptance, InvalidSchemaError, acceptance, schema_of
from routing.router.features import output_format, prompt_of
from routing.router.policy import LearnedRouter, RoutedPlan
from tenants.models import ApiKey

CLIENT_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Where a client names its request: OpenAI's header, then the older x-request-id.
CLIENT_REQUEST_ID_HEADERS = ("x-client-request-id", "x-request-id")
# Compiles tenants' JSON schemas (early exit) away from the event loop.
SCHEMA_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="json-schema")
INTERNAL_ERROR_STATUS = 500
# The output limit of a tenant without a plan (a plan sets its own).
DEFAULT_MAX_OUTPUT_TOKENS = 1024
logger = logging.getLogger(__name__)


class GatewayClients:
    """A process's (or an in-process caller's) long-lived clients, created on first
    use inside the event loop they then belong to."""

    policy: RoutingPolicy = LearnedRouter()

    @cached_property
    def redis(self) -> aioredis.Redis:
        # Its own pool (closed by aclose), sized and timed as settings.REDIS_POOLS["gateway"].
        return new_async_client("gateway")

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
    def limiter(self) -> Limiter:
        return Limiter(self.redis)

    @cached_property
    def orchestrator(self) -> Orchestrator:
        breaker = CircuitBreaker(self.redis, tenant_share=settings.BREAKER_TENANT_SHARE)
        providers = ProviderClient(self.redis if settings.PROVIDER_SHARED_CONCURRENCY else None)
        return Orchestrator(providers, breaker)

    @cached_property
    def replayer(self) -> spool.Replayer:
        """Replays spooled settlements; created at the first settle, when it
        also takes up what an earlier process left in the spool."""
        replayer = spool.Replayer(self.redis, self.limiter)
        if spool.pending():
            replayer.wake()
        return replayer

    async def aclose(self) -> None:
        """Close what was opened (provider connections, the Redis pool)."""
        if "orchestrator" in self.__dict__:
            await self.orchestrator.providers.aclose()
        if "redis" in self.__dict__:
            await self.redis.aclose()


# One set of clients per event loop. A connection belongs to the loop that opened it:
# a second loop in the process (a test's ASGI transport beside the served app) that
# borrowed the first's pool would read from a transport of another, maybe closed,
# loop, and hand its own connections back to the server's pool; under uvloop that
# corrupts memory. The server process runs one loop, so it holds one set.
_loop_clients: dict[asyncio.AbstractEventLoop, GatewayClients] = {}
_loop_clients_lock = threading.Lock()


def loop_clients() -> GatewayClients:
    """The running event loop's clients, created on its first request."""
    loop = asyncio.get_running_loop()
    clients = _loop_clients.get(loop)
    if clients is None:
        with _loop_clients_lock:
            for closed in [other for other in _loop_clients if other.is_closed()]:
                del _loop_clients[closed]
            clients = _loop_clients.setdefault(loop, GatewayClients())
    return clients


async def close_loop_clients() -> None:
    """Close the running loop's clients (the ASGI lifespan's shutdown)."""
    with _loop_clients_lock:
        clients = _loop_clients.pop(asyncio.get_running_loop(), None)
    if clients is not None:
        await clients.aclose()


def client_request_id(headers: Mapping[str, str]) -> str:
    """The id a client gave its request, echoed back as x-client-request-id when it
    is a plain token of at most 128 characters (anything else is dropped)."""
    named = next((headers[name] for name in CLIENT_REQUEST_ID_HEADERS if headers.get(name)), "")
    return echoed_request_id(named)


def echoed_request_id(value: str) -> str:
    return value if CLIENT_REQUEST_ID_PATTERN.fullmatch(value) else ""


@dataclass
class RequestContext:
    """One request: its identity, clocks, what served it, what it cost, and how it ended."""

    request_id: str
    client_request_id: str = ""
    endpoint: str = "inprocess"  # what the metrics call its door: a /v1 route, "websocket"
    started: float = field(default_factory=time.perf_counter)
    outcome: Outcome = field(default_factory=Outcome)
    plan: RoutePlan | None = None
    accepts: Acceptance | None = None  # the request's JSON schema as a test of an answer (early exit)
    api_key: ApiKey | None = None
    meter: Meter | None = None
    first_token_at: float | None = None
    # A stream's overhead is taken at its first token, as its header is: after it, the
    # time is the reader's and the provider's, not the gateway's.
    overhead_at_first_token: float | None = None
    streaming: bool = False  # the response outlives the transport's handler and settles itself
    settled: bool = False
    status: int = 500
    error_type: str = "internal_error"
    # For tenants that log prompts and outputs (request_logs): references, not copies.
    request_body: dict[str, Any] | None = None
    response_text: str = ""
    clients: GatewayClients = field(default_factory=loop_clients)
    # What the ledger bills of the list price: 1 on /v1, the plan's batch discount for
    # batch lines (batches/). Limits still admit at list price: an upper bound.
    price_factor: Decimal = Decimal(1)
    # The router's quality target for this request instead of the tenant's (an eval of `auto`).
    quality_target: float | None = None
    # The degrade level, when one of its switches changed this request (x-aiaas-degraded).
    degraded_by: Level | None = None

    def __post_init__(self) -> None:
        self.outcome.usage.price_factor = self.price_factor

    @classmethod
    def new(cls, client_request_id: str = "", **fields: Any) -> RequestContext:
        # Our id is always ours: it keys the ledger, so a client must not choose it.
        return cls(f"req_{uuid.uuid4().hex}", echoed_request_id(client_request_id), **fields)

    def succeed(self, status: int = 200) -> None:
        self.status, self.error_type = status, ""

    def fail(self, error: GatewayError, *, answered: bool = False) -> None:
        """Record how the request failed; `answered`: the error is the answer the
        client gets (kept for its request log)."""
        self.status, self.error_type = error.status, error.error_type
        if answered and self.logs_requests:
            self.response_text = orjson.dumps(error.body()).decode()

    def overhead_seconds(self) -> float:
        """The gateway's own time so far: time since the request arrived, minus time waiting on providers."""
        return max(0.0, time.perf_counter() - self.started - self.outcome.timing.waiting_seconds)

    def headers(self) -> dict[str, str]:
        overhead_ms = self.overhead_seconds() * 1000
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
        if self.degraded_by is not None:
            headers["x-aiaas-degraded"] = self.degraded_by.value
        return headers

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
            self.overhead_at_first_token = self.overhead_seconds()

    @property
    def logs_requests(self) -> bool:
        """The tenant keeps its prompts and outputs (the tenant is cached with the key)."""
        return self.api_key is not None and self.api_key.tenant.request_logging_enabled

    @contextlib.asynccontextmanager
    async def lifecycle(self) -> AsyncIterator[None]:
        """Run one request: any failure inside leaves as the GatewayError the error
        ladder makes of it, recorded on the context; the request is settled on the
        way out unless a stream took over its settling (`streaming`)."""
        try:
            yield
        except asyncio.CancelledError:
            self.fail(cancelled())
            raise
        except Exception as failure:
            error = error_for(failure)
            if error.status == INTERNAL_ERROR_STATUS:
                logger.exception("request %s failed", self.request_id)
            self.fail(error, answered=True)
            if error is failure:
                raise
            raise error from None
        finally:
            if not self.streaming:
                await self.settle()

    async def settle(self) -> None:
        """Account for the request once it is over, whatever its outcome. An admitted
        request reconciles its reservation and queues its one usage event (and
        what the router learns from it); one that reached no model (refused
        before admission, or the model list) is only counted
        (aiaas_gateway_unmetered_requests_total): a flood of them writes nothing."""
        if self.settled:
            return
        self.settled = True
        self.observe()
        latency.flush_soon(self.clients.redis)
        with tracing.span("settle", {"http.response.status_code": self.status}):
            await self.account()

    async def account(self) -> None:
        if self.api_key is None or self.meter is None or self.meter.reservation is None:
            metrics.series(
                metrics.GATEWAY_UNMETERED_REQUESTS, str(self.status), self.error_type or "none"
            ).inc()
            if self.api_key is not None and self.logs_requests and self.request_body is not None:
                await self.queue_log(self.api_key)
            return
        replayer = self.clients.replayer
        # Independent Redis writes: one round trip of waiting instead of several.
        usage = self.usage_record(self.api_key)
        steps: list[Awaitable[Any]] = [
            queue_usage(self.clients.redis, usage),
            self.meter.settle(self.outcome),
        ]
        if self.logs_requests:
            steps.append(self.queue_log(self.api_key))
        if isinstance(self.plan, RoutedPlan) and self.plan.decision is not None:
            steps.append(self.record_route(self.api_key, self.plan))
        queued, unreconciled, *_ = await asyncio.gather(*steps)
        if not queued or unreconciled is not None:
            # Redis failed mid-request: kept on disk, replayed once it answers.
            await asyncio.to_thread(spool.keep, self.request_id, None if queued else usage, unreconciled)
            replayer.wake()

    def observe(self) -> None:
        """The request's figures in the metrics (aiaas/observability/metrics.py): the
        gateway's overhead, and for a request a model served, its upstream time,
        time to first token and tokens."""
        overhead = (
            self.overhead_seconds() if self.overhead_at_first_token is None else self.overhead_at_first_token
        )
        metrics.series(metrics.GATEWAY_OVERHEAD, self.endpoint).observe(overhead)
        latency.recorder.record(latency.Kind.OVERHEAD, overhead)
        model, usage = self.outcome.model, self.outcome.usage
        if model is None:
            return
        latency.recorder.record(latency.Kind.UPSTREAM, self.outcome.timing.waiting_seconds)
        labels = (model.model_id, str(model.tier))
        metrics.series(metrics.UPSTREAM_LATENCY, *labels).observe(self.outcome.timing.waiting_seconds)
        if self.first_token_at is not None:
            metrics.series(metrics.TTFT, *labels).observe(self.first_token_at - self.started)
        metrics.series(metrics.TOKENS, *labels, "prompt").inc(usage.prompt_tokens)
        metrics.series(metrics.TOKENS, *labels, "completion").inc(usage.completion_tokens)

    async def record_route(self, api_key: ApiKey, plan: RoutedPlan) -> None:
        """What the router learns from this request and reports about it (one Redis
        pipeline, concurrent with the other settlement writes)."""
        decision = plan.decision
        assert decision is not None
        usage, served, first = self.outcome.usage, self.outcome.model, plan.chain[0]
        top_tier = plan.top_tier or plan.chain[-1]
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
            top_tier_cost_usd=top_tier.cost_usd(usage.prompt_tokens, usage.completion_tokens)
            * usage.price_factor,
            expected_cost_usd=Decimal(str(decision.expected_cost_usd)),
            latency_ms=round((time.perf_counter() - self.started) * 1000),
        )
        observe_route(outcome)
        try:
            await router_outcomes.record(self.clients.redis, outcome)
        except aioredis.RedisError:
            logger.exception("the route of %s was not recorded", self.request_id)

    async def queue_log(self, api_key: ApiKey) -> None:
        body, model = self.request_body or {}, self.outcome.model
        try:
            await queue_request_log(
                self.clients.redis,
                tenant_id=api_key.tenant_id,
                schema_name=api_key.tenant.schema_name,
                request_id=self.request_id,
                api_key_id=api_key.pk,
                model=model.model_id if model else str(body.get("model", "")),
                request_body=body,
                response_text=self.response_text,
                status=self.status,
                created_at=timezone.now(),
            )
        except RequestLogQueueUnavailableError:
            logger.exception("request log %s was not queued", self.request_id)

    def usage_record(self, api_key: ApiKey) -> UsageRecord:
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
            status=self.status,
            error_type=self.error_type[:100],
            estimated=usage.estimated,
            created_at=timezone.now(),
        )


def observe_route(outcome: router_outcomes.RequestOutcome) -> None:
    """A routed request's escalation (served by another tier than chosen) and costs, in the metrics."""
    chosen, served = outcome.decision.tier, outcome.served_tier
    if served is not None and served != chosen:
        metrics.series(metrics.ROUTER_ESCALATIONS, str(chosen), str(served)).inc()
    metrics.ROUTER_EXPECTED_COST.inc(float(outcome.expected_cost_usd))
    metrics.ROUTER_ACTUAL_COST.inc(float(outcome.cost_usd))


async def queue_usage(redis: aioredis.Redis, record: UsageRecord) -> bool:
    """Whether the usage event reached the queue."""
    try:
        await record_usage(redis, record)
    except UsageQueueUnavailableError:
        # Limits fail closed before any provider call, so this is Redis lost mid-request.
        logger.warning("usage event %s was not queued; spooled", record.request_id)
        return False
    return True


@dataclass(frozen=True, slots=True)
class PreparedChat:
    """A chat request routed and admitted: what it asks, the models that may serve
    it in order, and by when."""

    request: ChatRequest
    plan: RoutePlan
    deadline: Deadline
    streamed: bool

    @property
    def early_exit(self) -> bool:
        plan = self.plan
        return isinstance(plan, RoutedPlan) and plan.decision is not None and plan.decision.early_exit


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A non-streamed completion: the provider's answer under our id and the
    public model id, and what served it."""

    data: dict[str, Any]
    model: ModelSpec

    @property
    def content(self) -> str:
        choices = self.data.get("choices") or [{}]
        return str((choices[0].get("message") or {}).get("content") or "")


async def prepare_chat(
    context: RequestContext, chat: ChatRequest, *, streamed: bool | None = None
) -> PreparedChat:
    """Route and admit (limits and budget) a validated chat request. A WebSocket
    always streams (`streamed`), whatever the body says."""
    assert context.api_key is not None
    level = capacity_state.current()
    admit_at_level(context, level)
    chat = degrade_chat(context, chat.with_output_limit(default_output_limit(context.api_key)), level)
    assert chat.max_output_tokens is not None
    context.request_body = chat.body
    # An invalid schema is the client's error, routed or not.
    context.accepts = await early_exit_test(chat.body)
    stream = chat.stream if streamed is None else streamed
    route = RouteRequest(
        chat.model,
        chat.estimated_prompt_tokens,
        chat.max_output_tokens,
        needs_json=chat.needs_json,
        prompt=prompt_of(chat.body["messages"]),
        output=output_format(chat.body.get("response_format")),
        stream=stream,
        request_id=context.request_id,
        routing=await router_config(context) if chat.model == ROUTED_MODEL else None,
    )
    plan = await route_and_admit(
        context, route, chat.prompt_tokens_bound, chat.max_output_tokens * chat.choices
    )
    return PreparedChat(chat, plan, deadline_for(plan), stream)


async def router_config(context: RequestContext) -> TenantRouterConfig:
    assert context.api_key is not None
    config = await context.clients.router_configs.get(context.api_key.tenant_id)
    if context.quality_target is not None:
        config = at_target(config, context.quality_target)
    level = capacity_state.current()
    lowered = effects.lowered_quality_target(level, config.quality_target)
    if lowered is None:
        return config
    context.degraded_by = level.level
    return at_target(config, lowered)


def admit_at_level(context: RequestContext, level: capacity_state.Snapshot) -> None:
    """503 with Retry-After for a key whose priority the degrade level sheds."""
    assert context.api_key is not None
    if effects.sheds(level, context.api_key.priority):
        context.degraded_by = level.level
        raise GatewayError(
            503,
            f"The platform is {level.level.value}: requests of {context.api_key.priority}-priority keys "
            "are refused for now. Retry later.",
            "service_unavailable_error",
            "degraded_shed",
            retry_after=settings.DEGRADE_SHED_RETRY_AFTER_SECONDS,
        )


def degrade_chat(context: RequestContext, chat: ChatRequest, level: capacity_state.Snapshot) -> ChatRequest:
    """The request as the degrade level allows it: output capped, oldest turns dropped."""
    assert chat.max_output_tokens is not None
    changed = chat
    cap = effects.capped_output(level, chat.max_output_tokens)
    if cap is not None:
        changed = changed.with_output_cap(cap)
    messages = effects.shrunk_messages(level, chat.body["messages"])
    if messages is not None:
        changed = validate_chat({**changed.body, "messages": messages})
    if changed is not chat:
        context.degraded_by = level.level
    return changed


async def complete_chat(context: RequestContext, prepared: PreparedChat) -> ChatResult:
    """A prepared chat request answered along its plan (early exit included)."""
    data = await context.clients.orchestrator.complete(
        prepared.request.body,
        prepared.plan,
        prepared.deadline,
        context.outcome,
        context.accepts if prepared.early_exit else None,
    )
    if context.logs_requests:
        context.response_text = answer_text(data)
    model = context.outcome.model
    assert model is not None
    return ChatResult({**data, "id": f"chatcmpl-{context.request_id}", "model": model.model_id}, model)


def stream_chat(context: RequestContext, prepared: PreparedChat) -> AsyncIterator[ChatEvent]:
    """A prepared chat request's events along its plan (failover mid-stream
    included). The caller settles the request when the stream ends."""
    context.streaming = True
    return context.clients.orchestrator.stream(
        prepared.request.body, prepared.plan, prepared.deadline, context.outcome
    )


async def embed(context: RequestContext, request: EmbeddingsRequest) -> dict[str, Any]:
    """Embeddings for a validated request, routed and admitted like a chat."""
    context.request_body = request.body
    admit_at_level(context, capacity_state.current())
    route = RouteRequest(
        request.model,
        request.estimated_prompt_tokens,
        0,
        needs_embeddings=True,
        token_input=request.token_input,
    )
    plan = await route_and_admit(context, route, request.prompt_tokens_bound)
    data = await context.clients.orchestrator.embed(request.body, plan, deadline_for(plan), context.outcome)
    assert context.outcome.model is not None
    return {**data, "model": context.outcome.model.model_id}


async def route_and_admit(
    context: RequestContext, route: RouteRequest, prompt_tokens_bound: int, output_tokens_bound: int = 0
) -> RoutePlan:
    """The models that may serve `route`, once its limits and budget admit it (on
    the prompt's upper bound and the output of every choice); later billed
    attempts are held by the meter's guard."""
    api_key = context.api_key
    assert api_key is not None
    ensure_email_verified(api_key)
    with tracing.span("route"):
        catalog = await context.clients.catalog.get()
        resolve_model(route.requested_model, catalog, api_key)
        plan = plan_route(context.clients.policy, route, catalog, api_key)
    context.plan = plan
    context.outcome.tenant_id = api_key.tenant_id
    context.meter = Meter(context.clients.limiter, api_key)
    output_tokens_bound = max(output_tokens_bound, route.max_output_tokens)
    with tracing.span("admit"):
        await context.meter.admit(plan, prompt_tokens_bound, output_tokens_bound)
    context.outcome.guard = context.meter.guard
    return plan


def default_output_limit(api_key: ApiKey) -> int:
    """The output limit sent upstream for a request that sets none: its plan's."""
    plan = api_key.tenant.plan
    return plan.default_max_output_tokens if plan is not None else DEFAULT_MAX_OUTPUT_TOKENS


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


async def early_exit_test(body: dict[str, Any]) -> Acceptance | None:
    """Whether an answer follows the request's JSON schema (None without one; the
    compiled schema is cached). The schema is compiled off the event loop, in a
    small pool of its own: a tenant's large schema delays its own request only."""
    if schema_of(body) is None:
        return None
    try:
        return await asyncio.get_running_loop().run_in_executor(SCHEMA_EXECUTOR, acceptance, body)
    except InvalidSchemaError as error:
        raise invalid(
            f"`response_format.json_schema.schema` is not a valid JSON Schema: {error}",
            "response_format.json_schema.schema",
            "invalid_json_schema",
        ) from None
