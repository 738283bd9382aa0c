"""The `auto` router: the tier that minimises expected cost + lambda x error.

For a request the router knows (routing/router/features.py) its prompt, output
format and tenant. The classifier (routing/router/model.py) gives P(the cheap
tier fails) for the prompt; the tenant's own outcomes in the prompt's bucket
(its cluster of similar prompts and its output format) update that belief per
tier as a Beta posterior whose prior is the classifier (PRIOR_STRENGTH
pseudo-observations, fewer for a prompt unlike the training data: its
novelty), so a tenant starts from the global model and drifts to its own
traffic.

Each capable tier r has a normalised cost c_r (its price for this request over
the top tier's) and a failure probability p_r (the classifier's for the
cheapest tier, the top tier's base rate in the training data for the top,
tiers between interpolated, each but the top corrected by the tenant's
outcomes for that tier). The router picks argmin c_r + lambda * p_r, with lambda =
(1 - c_cheapest) / (threshold - p_top), where the threshold is the P(fail) at
which the classifier's training data reached the tenant's quality target: with
two tiers and no outcomes yet this sends exactly the prompts above the
threshold to the top tier, and it extends to any number of tiers.

Early exit: a non-streaming request with a JSON schema is answered by the
cheapest tier first and escalates when the answer does not validate (the
gateway checks it), unless the tenant's outcomes show the cheap tier fails that
kind of schema so often that the cascade would cost more than starting higher.

Exploration is bounded: when the next cheaper tier was a close call
(EXPLORATION_MARGIN), the tenant's exploration rate (at most 10%) of requests
go to it, so the posterior keeps learning where the policy would otherwise
never look, at a bounded expected regret. A canary version, when running,
takes its share of requests by a hash of the request id.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiaas.observability import metrics
from routing.catalog import Catalog, ModelSpec
from routing.models import ROUTED_MODEL
from routing.policy import CheapestCapableTier, NoCapableModelError, RoutePlan, RouteRequest, is_capable
from routing.router.adaptation import dithered
from routing.router.config import TenantRouterConfig, VersionSpec
from routing.router.model import RouterModel, load_artifact
from routing.router.ranking import prompt_summary

PRIOR_STRENGTH = 20.0
MIN_PRIOR_SHARE = 0.25  # of PRIOR_STRENGTH, for the most novel prompts
MIN_FAILURE_GAP = 0.01  # a target that needs a threshold at the top tier's own failure rate
SCHEMA_FAILURE_PRIOR = 0.1  # cheap models mostly return valid JSON; outcomes correct it per tenant
EXPECTED_OUTPUT_TOKENS = 300  # for comparing tiers' prices; actual usage is metered
# Exploration only tries a cheaper tier whose expected cost + lambda x error is
# within this much of the chosen one (in units of one top-tier call): it learns
# where the choice was close, and an exploring request never costs more than this.
EXPLORATION_MARGIN = 0.25


@dataclass(frozen=True, slots=True)
class Decision:
    """Why `auto` chose its first model; recorded with the request's outcome."""

    version: str
    is_canary: bool
    bucket: str
    tier: int
    tiers: tuple[int, ...]
    predicted_failure: float  # P(the chosen first tier fails), the tenant's outcomes included
    prior: float  # that tier's P(fail) before the tenant's outcomes (what they are judged against)
    novelty: float  # 1 - cosine similarity to the nearest cluster of training prompts
    cheap_failure: float  # P(the cheapest tier fails)
    score: float  # the classifier's P(the cheapest tier fails), before the tenant's outcomes
    threshold: float
    adapted: bool  # the threshold was re-solved from the tenant's outcomes (adaptation.py)
    expected_cost_usd: float  # the first tier's price, plus the next one's if it may fail
    explored: bool
    early_exit: bool
    decision_seconds: float
    # The score was re-ranked by the tenant's judged prompts, and the threshold re-solved
    # on it (ranking.py): cheap_failure is the corrected score.
    ranked: bool = False
    # What ranking.py keeps of the prompt should this decision be judged (no text);
    # empty for an early exit or a single tier.
    prompt_summary: bytes = b""

    def reason(self, target: float) -> str:
        version = f"{self.version}{' canary' if self.is_canary else ''}"
        if self.early_exit:
            return (
                f"auto {version}: early exit, tier {self.tier} first, escalating if its JSON "
                f"does not validate (P(invalid) {self.predicted_failure:.2f})"
            )
        how = "exploring one tier cheaper" if self.explored else f"quality target {target:.2f}"
        if self.adapted and not self.explored:
            how += ", threshold adapted to this tenant's outcomes"
        if self.ranked and not self.explored:
            how += ", ranked by its judged prompts"
        return (
            f"auto {version}: tier {self.tier}, P(tier {self.tiers[0]} fails) {self.cheap_failure:.2f} "
            f"vs threshold {self.threshold:.2f} ({how})"
        )


@dataclass(frozen=True, slots=True)
class RoutedPlan(RoutePlan):
    decision: Decision | None = None
    # What "saved vs. top tier" prices the request against: the registry's dearest
    # model of the top tier that could serve it, whatever the key's allowed models
    # cut the chain to (a key allowed one model has a chain of one).
    top_tier: ModelSpec | None = None


class LearnedRouter:
    """The gateway's RoutingPolicy: the learned router for `auto`, the named model
    and its fallbacks otherwise (CheapestCapableTier)."""

    def __init__(
        self,
        explore: Callable[[], float] = random.random,
        classifiers: Callable[[str], RouterModel] = load_artifact,
    ) -> None:
        self.named = CheapestCapableTier()
        self.explore = explore
        self.classifiers = classifiers  # artifact name -> classifier

    def plan(self, request: RouteRequest, catalog: Catalog, allows: Callable[[str], bool]) -> RoutePlan:
        if request.requested_model != ROUTED_MODEL or request.needs_embeddings or request.routing is None:
            return self.named.plan(request, catalog, allows)
        started = time.perf_counter()
        capable = [m for m in catalog.by_cost if allows(m.model_id) and is_capable(m, request)]
        if not capable:
            raise NoCapableModelError("no model available to this key can serve this request")
        config = request.routing
        version = config.version_for(request.request_id)
        tiers = first_of_each_tier(capable)
        model = self.classifiers(version.artifact)
        decision = decide(request, config, version, model, tiers, self.explore, started)
        metrics.ROUTER_DECISION_LATENCY.observe(decision.decision_seconds * 1000)
        metrics.series(metrics.ROUTER_DECISIONS, str(decision.tier)).inc()
        chain = tuple(m for m in capable if m.tier >= decision.tier)
        return RoutedPlan(
            chain, decision.reason(config.quality_target), decision, top_capable(catalog, request)
        )


def top_capable(catalog: Catalog, request: RouteRequest) -> ModelSpec | None:
    """The dearest registry model of the highest tier able to serve the request."""
    return next((m for m in reversed(catalog.by_cost) if is_capable(m, request)), None)


def first_of_each_tier(capable: list[ModelSpec]) -> list[ModelSpec]:
    seen: dict[int, ModelSpec] = {}
    for model in capable:
        seen.setdefault(model.tier, model)
    return list(seen.values())


def decide(
    request: RouteRequest,
    config: TenantRouterConfig,
    version: VersionSpec,
    model: RouterModel,
    tiers: list[ModelSpec],
    explore: Callable[[], float],
    started: float,
) -> Decision:
    output = request.output
    early_exit = output.kind == "json_schema" and not request.stream and len(tiers) > 1
    hand: tuple[float, ...] = ()
    if early_exit:  # the failure judged is invalid JSON, which the top tier is taken never to send
        bucket, cheap_prior, top_prior, novelty = f"schema:{output.bucket}", SCHEMA_FAILURE_PRIOR, 0.0, 0.0
    else:
        prediction = model.predict(request.prompt)
        bucket, cheap_prior, top_prior = (
            f"{prediction.cluster}:{output.bucket}",
            prediction.failure,
            model.top_failure,
        )
        novelty, hand = prediction.novelty, prediction.hand
    # The further a prompt is from the training data, the less the global prior
    # weighs against the tenant's own outcomes.
    strength = PRIOR_STRENGTH * max(MIN_PRIOR_SHARE, 1.0 - novelty)
    priors = [tier_prior(cheap_prior, top_prior, rank, len(tiers)) for rank in range(len(tiers))]
    # The top tier is the reference and keeps its prior: its failures are only seen
    # on the prompts sent up to it, and no tier above it could have done better.
    failures = [
        *(
            config.posterior(version.name, bucket, tier.tier, prior, strength)
            for tier, prior in zip(tiers[:-1], priors[:-1], strict=True)
        ),
        priors[-1],
    ]
    adapted = None if early_exit or len(tiers) < 2 else config.thresholds.get(version.name)
    summary = b"" if early_exit or len(tiers) < 2 else prompt_summary(hand, priors[0], priors[-1])
    ranking = config.rankings.get(version.name) if adapted is not None else None
    # The tenant threshold's bins (adaptation.py) stay on the classifier's scale: the
    # corrected score only meets the threshold solved for it.
    cut = priors[0]
    if ranking is not None:
        cut, adapted = ranking.corrected(summary), ranking.threshold
    threshold = threshold_for(model, config.quality_target, version.threshold_shift, adapted)
    reference = priors[-1]
    if adapted is not None:
        # The tenant's threshold is on the score's scale and already holds what its
        # outcomes taught: the score (dithered inside its bin) is compared with it, and
        # the top tier is the reference below it, so two tiers still reduce to a threshold.
        failures[0] = dithered(cut, request.request_id)
        reference = failures[-1] = max(0.0, min(reference, threshold - MIN_FAILURE_GAP))
    prices = expected_prices(tiers, request.estimated_prompt_tokens, request.max_output_tokens)
    costs = [price / (prices[-1] or 1.0) for price in prices]
    if early_exit and not cascade_costs_more(failures, costs):
        rank, explored = 0, False
    else:
        early_exit = False
        # With two tiers and no outcomes yet, this sends exactly the prompts whose
        # P(cheap tier fails) is over the threshold to the top tier.
        weight = (1.0 - costs[0]) / max(threshold - reference, MIN_FAILURE_GAP)
        scores = [cost + weight * failure for cost, failure in zip(costs, failures, strict=True)]
        rank = min(range(len(tiers)), key=lambda r: (scores[r], r))
        close_call = rank > 0 and scores[rank - 1] - scores[rank] <= EXPLORATION_MARGIN
        explored = close_call and explore() < config.exploration_rate
        rank -= explored
    return Decision(
        version=version.name,
        is_canary=version is config.canary,
        bucket=bucket,
        tier=tiers[rank].tier,
        tiers=tuple(tier.tier for tier in tiers),
        predicted_failure=failures[rank],
        prior=priors[rank],
        novelty=novelty,
        cheap_failure=failures[0],
        score=priors[0],
        threshold=threshold,
        adapted=adapted is not None,
        expected_cost_usd=prices[rank]
        + failures[rank] * (prices[rank + 1] if rank + 1 < len(prices) else 0.0),
        explored=explored,
        early_exit=early_exit,
        decision_seconds=time.perf_counter() - started,
        ranked=ranking is not None,
        prompt_summary=summary,
    )


def tier_prior(cheap_failure: float, top_failure: float, rank: int, tiers: int) -> float:
    """The prior P(fail) of the rank-th cheapest of `tiers` tiers: the classifier's
    for the cheapest, the top tier's base rate for the top, linear in between."""
    if tiers == 1:
        return top_failure
    return top_failure + (cheap_failure - top_failure) * (tiers - 1 - rank) / (tiers - 1)


def expected_prices(tiers: list[ModelSpec], prompt_tokens: int, max_output_tokens: int) -> list[float]:
    """Each tier's price in USD for this request, at an expected answer length."""
    output_tokens = min(max_output_tokens, EXPECTED_OUTPUT_TOKENS)
    return [float(tier.cost_usd(prompt_tokens, output_tokens)) for tier in tiers]


def threshold_for(model: RouterModel, target: float, shift: float, adapted: float | None = None) -> float:
    """The tenant's own threshold when it has one, else the training data's."""
    base = model.threshold(target) if adapted is None else adapted
    return min(1.0, max(1e-3, base + shift))


def cascade_costs_more(failures: list[float], costs: list[float]) -> bool:
    """Whether trying the cheapest tier first then escalating costs more, in
    expectation, than starting on the next tier: c0 + p0 * c1 > c1."""
    return costs[0] + failures[0] * costs[1] > costs[1]
