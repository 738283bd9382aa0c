"""The routing seam: which models may serve a request, in which order.

A policy turns a request's needs into a chain of models: the first serves it
and the rest are the fallbacks, tried in order when a model fails. The gateway
uses routing/router/'s LearnedRouter, which serves `auto` itself and leaves
named models to `CheapestCapableTier`; it only sees the `RoutingPolicy` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from routing.catalog import Catalog, ModelSpec
from routing.models import ROUTED_MODEL
from routing.router.config import TenantRouterConfig
from routing.router.features import PLAIN_TEXT, OutputFormat


@dataclass(frozen=True, slots=True)
class RouteRequest:
    requested_model: str
    estimated_prompt_tokens: int
    max_output_tokens: int
    needs_json: bool = False
    needs_embeddings: bool = False
    # Embeddings of token ids: another tokenizer's, which a local model cannot read.
    token_input: bool = False
    # What the learned router (routing/router/) judges for `auto`.
    prompt: str = ""
    output: OutputFormat = PLAIN_TEXT
    stream: bool = False
    request_id: str = ""
    routing: TenantRouterConfig | None = None


@dataclass(frozen=True, slots=True)
class RoutePlan:
    chain: tuple[ModelSpec, ...]
    reason: str


class NoCapableModelError(Exception):
    """No allowed, enabled model can serve the request (the message says why)."""


class RoutingPolicy(Protocol):
    def plan(self, request: RouteRequest, catalog: Catalog, allows: Callable[[str], bool]) -> RoutePlan: ...


def is_capable(model: ModelSpec, request: RouteRequest) -> bool:
    if request.needs_embeddings:
        return model.supports_embeddings and not (request.token_input and model.provider.is_local)
    fits = model.context_window >= request.estimated_prompt_tokens + request.max_output_tokens
    return model.supports_chat and fits and (model.supports_json_mode or not request.needs_json)


def refuse_unserved_kind(model: ModelSpec, request: RouteRequest) -> None:
    """A model named for what it never serves (chat on an embedding model, the
    reverse, token ids to a local model) is the caller's mistake: no fallback
    stands in for it."""
    if request.needs_embeddings and not model.supports_embeddings:
        raise NoCapableModelError(f"the model `{model.model_id}` does not serve embeddings")
    if request.needs_embeddings and not is_capable(model, request):
        raise NoCapableModelError(f"the model `{model.model_id}` embeds text, not token arrays")
    if not request.needs_embeddings and not model.supports_chat:
        raise NoCapableModelError(f"the model `{model.model_id}` does not serve chat completions")


class CheapestCapableTier:
    """`auto`: every capable model, cheapest tier first. A named model: that model,
    then the capable models of higher tiers as fallbacks (embeddings never fall
    back: another model's vectors are not comparable)."""

    def plan(self, request: RouteRequest, catalog: Catalog, allows: Callable[[str], bool]) -> RoutePlan:
        capable = [m for m in catalog.by_cost if allows(m.model_id) and is_capable(m, request)]
        if request.requested_model == ROUTED_MODEL:
            if not capable:
                raise NoCapableModelError("no model available to this key can serve this request")
            return RoutePlan(tuple(capable), f"auto: cheapest capable tier {capable[0].tier}")
        requested = catalog.resolve(request.requested_model)
        assert requested is not None, "the gateway resolves the model before planning"
        refuse_unserved_kind(requested, request)
        if request.needs_embeddings:
            return RoutePlan((requested,), "requested")
        fallbacks = tuple(m for m in capable if m.tier > requested.tier)
        if requested in capable:
            return RoutePlan((requested, *fallbacks), "requested")
        if not fallbacks:
            raise NoCapableModelError(
                f"the model `{requested.model_id}` cannot serve this request "
                f"(context window {requested.context_window} tokens) and no fallback can"
            )
        return RoutePlan(fallbacks, f"requested model cannot serve it; fell back to tier {fallbacks[0].tier}")
