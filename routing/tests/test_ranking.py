"""A tenant's own ranking (routing/router/ranking.py): the correction learns what the
classifier does not weigh, replayed traffic needs less of the top tier for the same
quality, a tenant with few judgements routes exactly as before, one tenant's
judgements never reach another's routing, and a decision stays within its budget."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import cast

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from routing.models import KeptJudgements, TenantRouting
from routing.policy import RouteRequest
from routing.router import adaptation, ranking
from routing.router.cache import RouterConfigCache
from routing.router.config import Tally, TenantRouterConfig
from routing.router.evaluation import online_replay
from routing.router.features import hand_features
from routing.router.model import load_artifact
from routing.router.outcomes import (
    FeedbackError,
    outcomes_key,
    record,
    record_feedback,
)
from routing.router.policy import Decision, LearnedRouter, RoutedPlan
from routing.router.ranking import entry, judged_key, needs_fitting, prompt_summary, tenant_ranking
from routing.router.services import snapshot_outcomes
from routing.router.training import OUTCOME_DATA, Outcomes, load_outcomes
from routing.tests.test_adaptation import decision as scored_decision
from routing.tests.test_adaptation import outcome
from testing.database import committed
from testing.tenants import TenantFixture

from .test_router import TWO_TIERS

VERSION = "global-v1"
GSM8K = OUTCOME_DATA / "gsm8k_responses.csv"
MMLU = OUTCOME_DATA / "mmlu"
SHORT = "What is the capital of France?"
# Many numbers and steps: the kind of prompt the cheapest tier fails in the examples below.
LONG = (
    "A shop sells 12 apples at 3 dollars and 7 pears at 5 dollars. It then sells 4 more "
    "apples at 2 dollars. How many dollars did it take in? Then subtract 9 and divide by 2."
)


def judgements(count: int, failing_share_of_long: float = 0.9) -> list[bytes]:
    """Judgements of both tiers where the classifier scores every prompt 0.2, but the
    cheapest tier fails long prompts full of numbers and passes short ones."""
    entries = []
    for index in range(count):
        long = index % 2 == 0
        summary = prompt_summary(hand_features(LONG if long else SHORT), 0.2, 0.1)
        failed = long and (index // 2) % 10 < failing_share_of_long * 10
        entries.append(entry(summary, top=False, failed=failed))
        entries.append(entry(summary, top=True, failed=index % 10 == 0))
    return entries


def test_the_correction_learns_what_the_classifier_does_not_weigh() -> None:
    fitted = tenant_ranking(judgements(200), 0.95)

    assert fitted is not None
    long, short = (fitted.corrected(prompt_summary(hand_features(text), 0.2, 0.1)) for text in (LONG, SHORT))
    assert long > 0.6
    assert short < 0.2  # the truth is 0.9 and 0, less what the penalty keeps of the classifier
    # The threshold is re-solved on the corrected scale: it separates the two.
    assert short < fitted.threshold < long


def test_with_little_evidence_the_correction_keeps_the_classifiers_ranking() -> None:
    """Barely more than the minimum of judgements: the penalty keeps the classifier's
    log-odds as the ranking (the hand features' weights stay small)."""
    fitted = tenant_ranking(judgements(adaptation.MIN_JUDGED, failing_share_of_long=0.5), 0.95)

    assert fitted is not None
    assert fitted.weights[1] == pytest.approx(1.0, abs=0.05)
    assert np.abs(fitted.weights[2:]).max() < 0.2


def test_too_few_judgements_leave_the_ranking_alone() -> None:
    assert tenant_ranking(judgements(adaptation.MIN_JUDGED - 1), 0.95) is None
    # Entries written under other hand features (a deploy changed them) are skipped.
    assert tenant_ranking([raw + b"\0\0\0\0" for raw in judgements(200)], 0.95) is None


def test_the_correction_is_fitted_again_only_after_enough_new_judgements() -> None:
    fitted = tenant_ranking(judgements(200), 0.95, judged=400)
    assert fitted is not None

    def judged(count: int) -> dict[str, Tally]:
        half = Tally(0, count / 2, 0)
        return {f"{VERSION}|score:20|cheap": half, f"{VERSION}|score:40|top": half}

    assert not needs_fitting(fitted, judged(400 + ranking.REFIT_JUDGEMENTS - 2), VERSION, 0.95)
    assert needs_fitting(fitted, judged(400 + ranking.REFIT_JUDGEMENTS), VERSION, 0.95)
    assert needs_fitting(fitted, judged(400), VERSION, 0.9)
    assert needs_fitting(None, {}, VERSION, 0.95)


def test_a_tenant_with_few_judgements_routes_exactly_as_with_the_threshold_alone() -> None:
    """Under 2 x MIN_JUDGED requests no tier can have MIN_JUDGED judgements: replays with
    and without the ranking make the same decisions."""
    gsm8k = first(load_outcomes([GSM8K]), 2 * adaptation.MIN_JUDGED)
    model = load_artifact("global_router.npz")

    assert online_replay(model, gsm8k, 0.95, learn=True, adapt=True, rank=True) == online_replay(
        model, gsm8k, 0.95, learn=True, adapt=True
    )


def first(outcomes: Outcomes, count: int) -> Outcomes:
    n = slice(0, count)
    return Outcomes(outcomes.prompts[n], outcomes.weak[n], outcomes.strong[n], outcomes.sources[n])


def test_replayed_traffic_needs_less_of_the_top_tier_for_the_same_quality() -> None:
    """GSM8K replayed as one tenant's traffic, every answer judged, three orders: with
    its own ranking the tenant reaches the quality of the threshold alone with a
    smaller strong share (medians; the held-out case, a router trained without
    GSM8K, is bench/routing_adaptation.py's)."""
    gsm8k = load_outcomes([GSM8K])
    model = load_artifact("global_router.npz")
    alone: list[dict[str, float]] = []
    ranked: list[dict[str, float]] = []
    for seed in range(3):
        for rows, rank in ((alone, False), (ranked, True)):
            replay = online_replay(model, gsm8k, 0.95, learn=True, adapt=True, rank=rank, seed=seed)
            rows.append(replay["second_half"])

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    assert median(ranked, "quality") >= 0.93
    assert median(ranked, "strong_share") <= median(alone, "strong_share") - 0.03


def decision(tier: int, summary: bytes) -> Decision:
    """test_adaptation's decision at a score of 0.2, keeping `summary` of its prompt."""
    return replace(scored_decision(tier, 0.2), prompt_summary=summary)


def served_and_judged(count: int) -> Iterator[tuple[int, int, bytes, bool]]:
    """(index, tier, prompt summary, failed) of `count` prompts, LONG and SHORT in turn,
    each served by the cheapest tier (failing the long ones) and the top one (failing
    one in ten): the traffic judgements() packs, for the outcome path."""
    for index in range(count):
        long = index % 2 == 0
        summary = prompt_summary(hand_features(LONG if long else SHORT), 0.2, 0.1)
        for tier, failed in ((1, long), (3, index % 10 == 0)):
            yield index, tier, summary, failed


def test_one_tenants_judgements_never_reach_anothers_ranking(
    serving_tenant: TenantFixture, django_db_setup: dict[str, TenantFixture]
) -> None:
    """Tenant A's users judge its routed requests (feedback, through the real Redis);
    tenant B has as many judged outcomes, but none of its prompts kept. A gets its
    ranking, B none; B cannot judge A's requests."""
    a, b = serving_tenant.tenant.pk, django_db_setup["alpha"].tenant.pk
    ids, judged = uuid.uuid4().hex[:8], adaptation.MIN_JUDGED + 10

    async def run() -> tuple[TenantRouterConfig, TenantRouterConfig, int, int]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        for tenant_id in (a, b):
            await client.delete(outcomes_key(tenant_id), judged_key(tenant_id, VERSION))
        for index, tier, summary, failed in served_and_judged(judged):
            request_id = f"rank_{ids}_{tier}_{index}"
            await record(client, outcome(a, request_id, decision(tier, summary), None))
            await record_feedback(client, a, request_id, good=not failed)
            await record(client, outcome(b, f"{request_id}_b", decision(tier, b""), failed))
        with pytest.raises(FeedbackError):
            await record_feedback(client, b, f"rank_{ids}_1_0", good=True)
        cache = RouterConfigCache(client)
        await cache.refresh(a)
        await cache.refresh(b)
        kept = (await client.llen(judged_key(a, VERSION)), await client.llen(judged_key(b, VERSION)))
        for tenant_id in (a, b):
            await client.delete(outcomes_key(tenant_id), judged_key(tenant_id, VERSION))
        await client.aclose()
        await sync_to_async(lambda: connection.close())()  # asgiref's thread read the settings
        return cache.entries[a][1], cache.entries[b][1], *kept

    config_a, config_b, kept_a, kept_b = asyncio.run(run())

    assert (kept_a, kept_b) == (2 * judged, 0)
    assert VERSION in config_a.thresholds
    assert VERSION in config_b.thresholds
    assert VERSION in config_a.rankings
    assert config_b.rankings == {}
    assert judged_key(a, VERSION) != judged_key(b, VERSION)
    long, short = (
        config_a.rankings[VERSION].corrected(prompt_summary(hand_features(p), 0.2, 0.1))
        for p in (LONG, SHORT)
    )
    assert long > short
    plan_a, plan_b = route_two_tiers(LONG, config_a), route_two_tiers(LONG, config_b)
    assert plan_a.decision is not None
    assert plan_b.decision is not None
    assert plan_a.decision.ranked
    assert not plan_b.decision.ranked
    # The tenant threshold's bins stay on the classifier's scale.
    assert plan_a.decision.score == plan_b.decision.score
    assert "ranked by its judged prompts" in plan_a.reason


def route_two_tiers(prompt: str, config: TenantRouterConfig, request_id: str = "req_1") -> RoutedPlan:
    request = RouteRequest("auto", 40, 256, prompt=prompt, request_id=request_id, routing=config)
    plan = LearnedRouter(explore=lambda: 1.0).plan(request, TWO_TIERS, lambda _: True)
    assert isinstance(plan, RoutedPlan)
    return plan


def test_a_ranked_decision_fits_the_latency_budget() -> None:
    """A tenant with MAX_JUDGED kept judgements: the decision with its correction adds
    under a millisecond at p99 to the classifier's own time (best of five runs a prompt)."""
    model = load_artifact("global_router.npz")
    outcomes = load_outcomes([MMLU / "mmlu_marketing.csv", MMLU / "mmlu_high_school_physics.csv"])
    kept = []
    for index in range(ranking.MAX_JUDGED):
        prompt = outcomes.prompts[index % len(outcomes)]
        prediction = model.predict(prompt)
        summary = prompt_summary(prediction.hand, prediction.failure, model.top_failure)
        kept.append(entry(summary, top=index % 3 == 0, failed=not outcomes.weak[index % len(outcomes)]))
    fitted = tenant_ranking(kept, 0.95)
    assert fitted is not None
    config = TenantRouterConfig(
        1, exploration_rate=0.0, thresholds={VERSION: 0.3}, rankings={VERSION: fitted}
    )
    ranked = route_two_tiers(SHORT, config).decision
    assert ranked is not None
    assert ranked.ranked

    def p99(decide: Callable[[str], object]) -> float:
        timings = []
        for prompt in outcomes.prompts:
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                decide(prompt)
                runs.append(time.perf_counter() - started)
            timings.append(min(runs))
        return float(np.percentile(timings, 99))

    with_correction = p99(lambda prompt: route_two_tiers(prompt, config))
    classifier = p99(model.predict)
    assert with_correction - classifier < 0.001


def test_kept_judgements_outlive_redis_losing_them(serving_tenant: TenantFixture) -> None:
    """Beat copies the tenant's kept list to PostgreSQL with its outcomes (again only once
    it grew); when Redis loses both, the next refresh puts the list back as it was, and
    the tenant's ranking is fitted from it."""
    tenant_id, ids, judged = serving_tenant.tenant.pk, uuid.uuid4().hex[:8], adaptation.MIN_JUDGED + 10
    committed(lambda: TenantRouting.objects.get_or_create(tenant_id=tenant_id))

    async def judge() -> list[bytes]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        await client.delete(outcomes_key(tenant_id), judged_key(tenant_id, VERSION))
        for index, tier, summary, failed in served_and_judged(judged):
            request_id = f"kept_{ids}_{tier}_{index}"
            await record(client, outcome(tenant_id, request_id, decision(tier, summary), None))
            await record_feedback(client, tenant_id, request_id, good=not failed)
        kept = await client.lrange(judged_key(tenant_id, VERSION), 0, -1)
        await client.aclose()
        return cast("list[bytes]", kept)

    async def lose_and_refresh() -> tuple[TenantRouterConfig, list[bytes]]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        await client.delete(outcomes_key(tenant_id), judged_key(tenant_id, VERSION))
        cache = RouterConfigCache(client)
        await cache.refresh(tenant_id)
        restored = await client.lrange(judged_key(tenant_id, VERSION), 0, -1)
        ttl = await client.ttl(judged_key(tenant_id, VERSION))
        await client.aclose()
        await sync_to_async(lambda: connection.close())()  # asgiref's thread read the settings
        assert ttl > 0
        return cache.entries[tenant_id][1], cast("list[bytes]", restored)

    def forget() -> None:
        """Other tests route for this tenant: its copies go first, then what Redis holds."""
        committed(lambda: TenantRouting.objects.filter(tenant_id=tenant_id).update(outcomes_snapshot={}))
        committed(lambda: KeptJudgements.objects.filter(routing__tenant_id=tenant_id).delete())
        with redis.Redis.from_url(settings.REDIS_URL) as client:
            client.delete(outcomes_key(tenant_id), judged_key(tenant_id, VERSION))

    try:
        kept = asyncio.run(judge())
        committed(snapshot_outcomes)
        copy = committed(lambda: KeptJudgements.objects.get(routing__tenant_id=tenant_id, version=VERSION))
        committed(snapshot_outcomes)
        again = committed(lambda: KeptJudgements.objects.get(pk=copy.pk))
        config, restored = asyncio.run(lose_and_refresh())
    finally:
        forget()

    assert len(kept) == 2 * judged
    assert bytes(copy.entries) == b"".join(kept)
    assert again.taken_at == copy.taken_at  # nothing new judged: not copied again
    assert restored == kept
    assert VERSION in config.rankings
