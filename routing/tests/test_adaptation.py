"""A tenant's threshold re-solved from its own judged outcomes (routing/router/adaptation.py):
the solve on worked examples, the policy using it, the gateway's Redis state feeding it,
and replayed traffic converging to the target without overshooting."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from routing.policy import RouteRequest
from routing.router import adaptation, ranking
from routing.router.adaptation import (
    CHEAP,
    ROUTED,
    SCORE_BINS,
    TOP,
    dithered,
    non_decreasing,
    solve_threshold,
)
from routing.router.cache import RouterConfigCache
from routing.router.config import Tally, TenantRouterConfig
from routing.router.evaluation import online_replay
from routing.router.model import load_artifact
from routing.router.outcomes import RequestOutcome, outcomes_key, record, record_feedback
from routing.router.policy import Decision, LearnedRouter, RoutedPlan
from routing.router.training import OUTCOME_DATA, load_outcomes
from testing.tenants import TenantFixture

from .test_router import TWO_TIERS, route

VERSION = "global-v1"


def field(score: float, role: str) -> str:
    return f"{VERSION}|score:{adaptation.score_bin(score)}|{role}"


def two_bins(low_cheap_failure: float, high_cheap_failure: float, judged: int = 10_000) -> dict[str, Tally]:
    """Traffic split evenly between scores 0.105 and 0.305; the top tier fails 10% of both."""
    outcomes = {}
    for score, rate in ((0.105, low_cheap_failure), (0.305, high_cheap_failure)):
        outcomes[field(score, ROUTED)] = Tally(0, judged, 0)
        outcomes[field(score, CHEAP)] = Tally(rate * judged, judged, score * judged)
        outcomes[field(score, TOP)] = Tally(0.1 * judged, judged, 0.1 * judged)
    return outcomes


def test_the_global_threshold_stays_until_both_tiers_are_judged_often_enough() -> None:
    outcomes = two_bins(0.2, 0.5, judged=adaptation.MIN_JUDGED // 2 - 1)
    assert solve_threshold(outcomes, VERSION, 0.95) is None
    assert solve_threshold(two_bins(0.2, 0.5, judged=adaptation.MIN_JUDGED), VERSION, 0.95) is not None


def test_a_worked_example() -> None:
    """Top quality 0.9 on both bins, so the goal is 0.95 x 0.9 = 0.855. The low bin
    served cheap costs 0.5 x (0.9 - 0.8) = 0.05: 0.85 < 0.855, so only part of it
    stays cheap: 0.9 - x 0.05 = 0.855, x = 0.9 (less the confidence margin, small
    with 10,000 judged requests a bin); the high bin goes up whole."""
    threshold = solve_threshold(two_bins(0.2, 0.5), VERSION, 0.95)

    assert threshold is not None
    low_bin = adaptation.score_bin(0.105)
    assert low_bin / SCORE_BINS + 0.85 / SCORE_BINS < threshold < low_bin / SCORE_BINS + 0.9 / SCORE_BINS
    # A looser target keeps the whole low bin cheap and sends part of the high one up.
    looser = solve_threshold(two_bins(0.2, 0.5), VERSION, 0.85)
    assert looser is not None
    high_bin = adaptation.score_bin(0.305)
    assert high_bin / SCORE_BINS < looser < (high_bin + 1) / SCORE_BINS


def test_harder_traffic_lowers_the_threshold_and_easier_raises_it() -> None:
    easy = solve_threshold(two_bins(0.12, 0.2), VERSION, 0.95)
    hard = solve_threshold(two_bins(0.4, 0.6), VERSION, 0.95)

    assert easy is not None
    assert hard is not None
    assert hard < 0.11 < easy


def test_the_failure_estimates_never_fall_as_the_score_rises() -> None:
    assert non_decreasing([0.1, 0.3, 0.2, 0.4], [1, 1, 1, 1]) == pytest.approx([0.1, 0.25, 0.25, 0.4])
    assert non_decreasing([0.5, 0.1], [3, 1]) == pytest.approx([0.4, 0.4])


def test_dithering_keeps_a_score_in_its_bin_and_spreads_requests_over_it() -> None:
    places = [dithered(0.1234, f"req_{index}") for index in range(2_000)]

    assert all(0.12 <= place < 0.13 for place in places)
    assert dithered(0.1234, "req_7") == dithered(0.1234, "req_7")
    below_middle = sum(place < 0.125 for place in places) / len(places)
    assert 0.45 < below_middle < 0.55


def test_the_policy_uses_the_tenants_threshold_on_the_classifiers_scale() -> None:
    prompt = "What is the capital of France?"
    plain = route(prompt, TenantRouterConfig(1, exploration_rate=0.0))
    assert plain.decision is not None
    assert not plain.decision.adapted
    score = plain.decision.score

    below = TenantRouterConfig(1, exploration_rate=0.0, thresholds={VERSION: max(0.0, score - 0.02)})
    above = TenantRouterConfig(1, exploration_rate=0.0, thresholds={VERSION: min(1.0, score + 0.02)})
    sent_up = route_two_tiers(prompt, below)
    kept = route_two_tiers(prompt, above)

    assert sent_up.decision is not None
    assert kept.decision is not None
    assert (sent_up.decision.tier, kept.decision.tier) == (3, 1)
    assert sent_up.decision.adapted
    assert kept.decision.adapted
    assert "threshold adapted to this tenant's outcomes" in sent_up.reason


def test_a_target_of_the_request_re_solves_the_tenants_threshold_for_it() -> None:
    """An evals experiment's target or a degrade level's lower one: the tenant's threshold
    (solved at its own 0.95) is solved again at the request's, and a ranking fitted at
    0.95 is set aside; the tenant's own target leaves the config as it is."""
    outcomes = two_bins(0.2, 0.5)
    own = TenantRouterConfig(1, quality_target=0.95, outcomes=outcomes)
    own = replace(own, thresholds=adaptation.adapted_thresholds(own))
    fitted = ranking.TenantRanking(np.zeros(1), np.ones(1), np.zeros(2), threshold=0.5, target=0.95, judged=0)
    own = replace(own, rankings={VERSION: fitted})

    looser = adaptation.at_target(own, 0.85)

    assert adaptation.at_target(own, 0.95) is own
    assert looser.quality_target == 0.85
    assert looser.thresholds[VERSION] == solve_threshold(outcomes, VERSION, 0.85)
    assert looser.thresholds[VERSION] > own.thresholds[VERSION]  # more stays on the cheap tier
    assert looser.rankings == {}


def route_two_tiers(prompt: str, config: TenantRouterConfig) -> RoutedPlan:
    request = RouteRequest("auto", 40, 256, prompt=prompt, request_id="req_1", routing=config)
    plan = LearnedRouter(explore=lambda: 1.0).plan(request, TWO_TIERS, lambda _: True)
    assert isinstance(plan, RoutedPlan)
    return plan


def decision(tier: int, score: float) -> Decision:
    return Decision(
        version=VERSION,
        is_canary=False,
        bucket="4:text",
        tier=tier,
        tiers=(1, 3),
        predicted_failure=score if tier == 1 else 0.15,
        prior=score if tier == 1 else 0.15,
        novelty=0.2,
        cheap_failure=score,
        score=score,
        threshold=0.25,
        adapted=False,
        expected_cost_usd=0.001,
        explored=False,
        early_exit=False,
        decision_seconds=0.0002,
    )


def test_the_gateways_outcomes_and_feedback_feed_the_tenants_threshold(serving_tenant: TenantFixture) -> None:
    """Routed requests and users' verdicts written to the real Redis as the gateway
    writes them; the router cache then serves the re-solved threshold."""
    tenant_id = serving_tenant.tenant.pk
    judged, ids = adaptation.MIN_JUDGED, uuid.uuid4().hex[:8]  # decisions are kept 7 days

    async def run() -> TenantRouterConfig:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        await client.delete(outcomes_key(tenant_id))
        for index in range(judged):
            # The cheapest tier, judged by the gateway, fails 60% of requests scored 0.2...
            await record(client, outcome(tenant_id, f"cheap_{ids}_{index}", decision(1, 0.2), index % 5 < 3))
            # ...and the top tier, judged later by users' feedback, 10%.
            await record(client, outcome(tenant_id, f"top_{ids}_{index}", decision(3, 0.4), None))
            await record_feedback(client, tenant_id, f"top_{ids}_{index}", good=index % 10 != 0)
        cache = RouterConfigCache(client)
        await cache.refresh(tenant_id)
        await client.delete(outcomes_key(tenant_id))
        await client.aclose()
        await sync_to_async(lambda: connection.close())()  # asgiref's thread read the settings
        return cache.entries[tenant_id][1]

    config = asyncio.run(run())

    assert config.outcomes[field(0.2, CHEAP)] == pytest.approx(Tally(30, 50, 10.0))
    assert config.outcomes[field(0.4, TOP)] == pytest.approx(Tally(5, 50, 7.5))
    assert config.outcomes[field(0.2, ROUTED)].observations == 50
    # The cheapest tier fails far more than predicted: everything from the low bin up
    # goes to the top tier.
    assert config.thresholds[VERSION] <= adaptation.score_bin(0.2) / SCORE_BINS + 0.005


def outcome(tenant_id: int, request_id: str, decided: Decision, failed: bool | None) -> RequestOutcome:
    return RequestOutcome(
        tenant_id=tenant_id,
        request_id=request_id,
        decision=decided,
        served_tier=decided.tier,
        first_tier_failed=failed,
        cost_usd=Decimal("0.001"),
        top_tier_cost_usd=Decimal("0.01"),
        expected_cost_usd=Decimal("0.001"),
        latency_ms=100,
    )


def test_replayed_traffic_reaches_the_target_without_the_overshoot_of_bucket_learning() -> None:
    """GSM8K replayed as one tenant's traffic, each answer judged: with the re-solved
    threshold the second half's quality is at the target, at a smaller strong share
    than the per-bucket learning alone reaches."""
    gsm8k = load_outcomes([OUTCOME_DATA / "gsm8k_responses.csv"])
    model = load_artifact("global_router.npz")

    learning = online_replay(model, gsm8k, 0.95, learn=True, seed=0)["second_half"]
    adaptive = online_replay(model, gsm8k, 0.95, learn=True, adapt=True, seed=0)["second_half"]

    assert adaptive["quality"] >= 0.93
    assert adaptive["strong_share"] <= learning["strong_share"] - 0.05
