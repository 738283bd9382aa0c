"""One chat completion for a tenant from inside the platform (agent runs), through
the same routing, limits, budgets, resilience and usage ledger as `/v1`.

The caller passes the API key the work is attributed to (an agent run's
starting key). Each `InProcessGateway` has its own clients (Redis pool,
provider connections), bound to the event loop it is first used on: keep one
per thread and event loop, never share the web gateway's `state`, whose
clients belong to the server's loop.

Agent calls are metered and appear in the usage ledger like any /v1 request;
they are not request-logged, since the run's own events hold the prompt and
the answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from billing.usage import UsageQueueUnavailableError, record_usage
from routing.gateway.app import Context, GatewayState, deadline_for, plan_route, resolve_model
from routing.gateway.errors import GatewayError, from_provider_error
from routing.gateway.metering import Meter
from routing.gateway.providers import ProviderError
from routing.gateway.validation import parse_chat_request
from routing.policy import RoutePlan, RouteRequest
from tenants.models import ApiKey

logger = logging.getLogger(__name__)
TOO_LONG = ProviderError("timeout", "the request took too long")


@dataclass(frozen=True)
class Completion:
    request_id: str
    data: dict[str, Any]
    model_id: str
    tier: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal

    @property
    def content(self) -> str:
        choices = self.data.get("choices") or [{}]
        return str((choices[0].get("message") or {}).get("content") or "")


class InProcessGateway:
    def __init__(self) -> None:
        self.state = GatewayState()

    async def chat(self, api_key: ApiKey, body: dict[str, Any], request_id: str) -> Completion:
        """A non-streaming chat completion of `body`, or GatewayError (OpenAI-typed).

        Usage is settled and queued to the ledger under `request_id` whatever the outcome.
        """
        context = Context(request_id)
        context.api_key = api_key
        status, error_type = 500, "internal_error"
        try:
            data = await self._complete(context, api_key, body)
            status, error_type = 200, ""
        except GatewayError as error:
            status, error_type = error.status, error.code or error.type
            raise
        except (ProviderError, TimeoutError) as error:
            failure = from_provider_error(error if isinstance(error, ProviderError) else TOO_LONG)
            status, error_type = failure.status, failure.code or failure.type
            raise failure from None
        finally:
            await self._settle(context, api_key, status, error_type)
        model, usage = context.outcome.model, context.outcome.usage
        assert model is not None
        return Completion(
            request_id=request_id,
            data={**data, "id": f"chatcmpl-{request_id}", "model": model.model_id},
            model_id=model.model_id,
            tier=model.tier,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
        )

    async def _complete(self, context: Context, api_key: ApiKey, body: dict[str, Any]) -> dict[str, Any]:
        chat = parse_chat_request(orjson.dumps({**body, "stream": False}))
        route = RouteRequest(
            chat.model, chat.estimated_prompt_tokens, chat.max_output_tokens, needs_json=chat.needs_json
        )
        plan = await self._route_and_admit(context, api_key, route)
        return await self.state.orchestrator.complete(chat.body, plan, deadline_for(plan), context.outcome)

    async def _route_and_admit(self, context: Context, api_key: ApiKey, route: RouteRequest) -> RoutePlan:
        catalog = await self.state.catalog.get()
        resolve_model(route.requested_model, catalog, api_key)
        plan = plan_route(route, catalog, api_key)
        context.reason = plan.reason
        context.meter = Meter(self.state.limiter, api_key)
        await context.meter.admit(plan, route.estimated_prompt_tokens, route.max_output_tokens)
        return plan

    async def _settle(self, context: Context, api_key: ApiKey, status: int, error_type: str) -> None:
        if context.meter is not None:
            await context.meter.settle(context.outcome)
        try:
            await record_usage(self.state.redis, context.usage_record(api_key, status, error_type))
        except UsageQueueUnavailableError:
            logger.exception("usage event %s was not queued", context.request_id)

    async def aclose(self) -> None:
        if "orchestrator" in self.state.__dict__:
            await self.state.orchestrator.providers.aclose()
        if "redis" in self.state.__dict__:
            await self.state.redis.aclose()
