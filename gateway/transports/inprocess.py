"""Chat completions and embeddings for a tenant from inside the platform (agent runs; soon
ingestion and evals), through the chat service as `/v1` uses it: routing (the
learned router and early exit for `auto`), limits, budgets, resilience, the
usage ledger and request logs.

The caller passes the API key the work is attributed to (an agent run's
starting key) and a request body as a dict (validated and typed, never
re-encoded). Each `InProcessGateway` has its own clients (Redis pool,
provider connections), bound to the event loop it is first used on: keep one
per thread and event loop, never share the server's, whose clients belong to
the server's loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gateway import service
from gateway.service import GatewayClients, RequestContext
from gateway.validation import ChatRequest, EmbeddingsRequest, validate_chat, validate_embeddings
from tenants.models import ApiKey


@dataclass(frozen=True)
class Completion:
    request_id: str
    data: dict[str, Any]
    model_id: str
    tier: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    content: str


@dataclass(frozen=True)
class Embeddings:
    request_id: str
    model_id: str
    vectors: list[list[float]]  # in the order of the inputs
    prompt_tokens: int
    cost_usd: Decimal
    data: dict[str, Any] = field(default_factory=dict)  # the response body /v1 would answer


# List price: what /v1 bills.
FULL_PRICE = Decimal(1)


class InProcessGateway:
    def __init__(self) -> None:
        self.clients = GatewayClients()

    async def chat(
        self,
        api_key: ApiKey,
        request: dict[str, Any] | ChatRequest,
        request_id: str,
        *,
        price_factor: Decimal = FULL_PRICE,
        quality_target: float | None = None,
    ) -> Completion:
        """A non-streamed chat completion, or GatewayError (OpenAI-typed). Usage is
        settled and queued to the ledger under `request_id` whatever the outcome,
        its cost times `price_factor`. `quality_target` replaces the tenant's for
        `auto` (an eval of the router at another target)."""
        context = RequestContext(
            request_id,
            api_key=api_key,
            clients=self.clients,
            price_factor=price_factor,
            quality_target=quality_target,
        )
        async with context.lifecycle():
            chat = request if isinstance(request, ChatRequest) else validate_chat(request)
            prepared = await service.prepare_chat(context, chat, streamed=False)
            result = await service.complete_chat(context, prepared)
            context.succeed()
        usage = context.outcome.usage
        return Completion(
            request_id=request_id,
            data=result.data,
            model_id=result.model.model_id,
            tier=result.model.tier,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            content=result.content,
        )

    async def embeddings(
        self,
        api_key: ApiKey,
        request: dict[str, Any] | EmbeddingsRequest,
        request_id: str,
        *,
        price_factor: Decimal = FULL_PRICE,
    ) -> Embeddings:
        """Embeddings of the request's inputs, or GatewayError; settled like `chat`."""
        context = RequestContext(request_id, api_key=api_key, clients=self.clients, price_factor=price_factor)
        async with context.lifecycle():
            embed = request if isinstance(request, EmbeddingsRequest) else validate_embeddings(request)
            data = await service.embed(context, embed)
            context.succeed()
        model, usage = context.outcome.model, context.outcome.usage
        assert model is not None
        vectors = [item["embedding"] for item in sorted(data["data"], key=lambda item: item["index"])]
        return Embeddings(request_id, model.model_id, vectors, usage.prompt_tokens, usage.cost_usd, data)

    async def aclose(self) -> None:
        await self.clients.aclose()
