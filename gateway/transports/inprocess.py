"""One chat completion for a tenant from inside the platform (agent runs), through
the same code as `/v1`: routing (the learned router and early exit for `auto`),
limits, budgets, resilience, the usage ledger and request logs.

The caller passes the API key the work is attributed to (an agent run's
starting key). Each `InProcessGateway` has its own clients (Redis pool,
provider connections), bound to the event loop it is first used on: keep one
per thread and event loop, never share the web gateway's `state`, whose
clients belong to the server's loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from gateway.errors import GatewayError, from_provider_error
from gateway.providers.client import ProviderError
from gateway.transports.http import Context, GatewayState, complete_chat, prepare_chat
from tenants.models import ApiKey

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
        context = Context(request_id, api_key=api_key, gateway=self.state)
        status, error_type = 500, "internal_error"
        try:
            chat, plan, deadline = await prepare_chat(
                context, api_key, orjson.dumps({**body, "stream": False})
            )
            data = await complete_chat(context, chat, plan, deadline)
            status, error_type = 200, ""
        except GatewayError as error:
            status, error_type = error.status, error.code or error.type
            raise
        except (ProviderError, TimeoutError) as error:
            failure = from_provider_error(error if isinstance(error, ProviderError) else TOO_LONG)
            status, error_type = failure.status, failure.code or failure.type
            raise failure from None
        finally:
            await context.settle(status, error_type)
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

    async def aclose(self) -> None:
        if "orchestrator" in self.state.__dict__:
            await self.state.orchestrator.providers.aclose()
        if "redis" in self.state.__dict__:
            await self.state.redis.aclose()
