"""Offline evaluation of a router on held-out outcome data, with RouteLLM's metrics.

A router ranks prompts by how much they need the strong model; sending the top
share s of them to it gives an accuracy. PGR (performance gap recovered) is
(accuracy - weak) / (strong - weak); CPT(x) is the smallest strong share whose
PGR reaches x; APGR is the area under PGR as s goes from 0 to 1. The strong
share at a quality target t is the smallest s whose accuracy reaches
t x strong accuracy. The random router and the oracle are computed on the same
data for comparison.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from routing.catalog import Catalog, ModelSpec, ProviderSpec
from routing.policy import RouteRequest
from routing.router.adaptation import adapted_thresholds
from routing.router.config import Tally, TenantRouterConfig
from routing.router.model import FloatArray, RouterModel
from routing.router.outcomes import count_routed, observe, outcomes_key, tallies
from routing.router.policy import LearnedRouter, RoutedPlan
from routing.router.ranking import TenantRanking, judged_key, judgements, needs_fitting, tenant_ranking
from routing.router.training import Outcomes, calibration_error

BoolArray = npt.NDArray[np.bool_]


def accuracy_curve(scores: FloatArray, weak: BoolArray, strong: BoolArray) -> FloatArray:
    """Accuracy when the k highest-scored prompts go to the strong model, k = 0..n."""
    order = np.argsort(-scores, kind="stable")
    gains = strong[order].astype(int) - weak[order].astype(int)
    return np.asarray((weak.sum() + np.concatenate([[0], np.cumsum(gains)])) / len(scores), dtype=np.float64)


def smallest_share(curve: FloatArray, goal: float) -> float:
    reached = np.flatnonzero(curve >= goal - 1e-12)
    return float(reached[0] / (len(curve) - 1)) if reached.size else 1.0


def curve_metrics(scores: FloatArray, weak: BoolArray, strong: BoolArray, target: float) -> dict[str, float]:
    curve = accuracy_curve(scores, weak, strong)
    weak_accuracy, strong_accuracy = float(weak.mean()), float(strong.mean())
    gap = strong_accuracy - weak_accuracy
    pgr = (curve - weak_accuracy) / gap if gap > 0 else np.ones_like(curve)
    shares = np.linspace(0.0, 1.0, len(curve))
    return {
        "apgr": float(np.trapezoid(pgr, shares)),
        "cpt50": smallest_share(curve, weak_accuracy + 0.5 * gap),
        "cpt80": smallest_share(curve, weak_accuracy + 0.8 * gap),
        "strong_share_at_target": smallest_share(curve, target * strong_accuracy),
    }


def random_share(weak: BoolArray, strong: BoolArray, target: float) -> float:
    """The strong share a random router needs, in expectation."""
    weak_accuracy, strong_accuracy = float(weak.mean()), float(strong.mean())
    if weak_accuracy >= target * strong_accuracy:
        return 0.0
    return min(1.0, (target * strong_accuracy - weak_accuracy) / (strong_accuracy - weak_accuracy))


def evaluate(model: RouterModel, train: Outcomes, test: Outcomes, target: float) -> dict[str, Any]:
    """Every figure of `route_bench`. Nothing here looks at the test labels before
    the router has scored every test prompt."""
    logits = np.empty(len(test))
    probabilities = np.empty(len(test))
    timings = np.empty(len(test))
    threshold = model.threshold(target)
    strong_routed = np.zeros(len(test), dtype=bool)
    for index, prompt in enumerate(test.prompts):
        # A decision's time is the median of three runs, so one preemption by
        # another process on a busy machine does not count as the router's time.
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            prediction = model.predict(prompt)
            strong_routed[index] = prediction.failure > threshold
            runs.append(time.perf_counter() - started)
        timings[index] = sorted(runs)[1]
        logits[index] = model.logit(prompt)
        probabilities[index] = prediction.failure
    weak, strong = test.weak, test.strong
    oracle_scores = (strong & ~weak).astype(np.float64) - (weak & ~strong).astype(np.float64)
    policy_accuracy = float(np.where(strong_routed, strong, weak).mean())
    return {
        "router": model.name,
        "n_train": len(train),
        "n_test": len(test),
        "train_sources": sorted(set(train.sources)),
        "test_sources": sorted(set(test.sources)),
        "target": target,
        "weak_accuracy": round(float(weak.mean()), 4),
        "strong_accuracy": round(float(strong.mean()), 4),
        **{key: round(value, 4) for key, value in curve_metrics(logits, weak, strong, target).items()},
        "random_strong_share_at_target": round(random_share(weak, strong, target), 4),
        "oracle_strong_share_at_target": round(
            curve_metrics(oracle_scores, weak, strong, target)["strong_share_at_target"], 4
        ),
        # The live policy: the threshold chosen on the training data, applied to the test data.
        "policy_threshold": round(threshold, 4),
        "policy_strong_share": round(float(strong_routed.mean()), 4),
        "policy_quality": round(policy_accuracy / float(strong.mean()), 4) if strong.any() else None,
        "calibration_error_test": round(calibration_error(probabilities, ~weak), 4),
        "calibration_error_train_out_of_fold": round(float(model.meta["calibration_error_out_of_fold"]), 4),
        "decision_p50_ms": round(float(np.percentile(timings, 50)) * 1000, 4),
        "decision_p99_ms": round(float(np.percentile(timings, 99)) * 1000, 4),
    }


# Prices per 1M tokens (input, output) for the online replay: Mixtral-8x7B as
# hosted at the time of RouteLLM's data, and gpt-4-1106-preview.
REPLAY_PRICES = {"weak": ("0.60", "0.60"), "strong": ("10", "30")}
REPLAY_EXPLORATION = 0.05
# Requests between two refreshes of the tenant's outcomes (the gateway refreshes every
# 5 s: REFRESH_SECONDS in routing/router/cache.py).
REPLAY_REFRESH = 50
REPLAY_TENANT = 1


def replay_catalog() -> Catalog:
    provider = ProviderSpec(
        "replay", "Replay", "http://replay.invalid/v1", "none", None, {}, 1, 1, 1, 1, True
    )
    models = {
        name: ModelSpec(name, provider, name, tier, 1_000_000, Decimal(inp), Decimal(out), True, True, False)
        for tier, (name, (inp, out)) in enumerate(REPLAY_PRICES.items(), start=1)
    }
    return Catalog(models)


class ReplayStore:
    """The Redis writes of routing/router/outcomes.py, kept in memory for a replay."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, float]] = {}
        self.lists: dict[str, list[bytes]] = {}

    def hincrby(self, key: str, field: str, amount: float) -> None:
        values = self.hashes.setdefault(key, {})
        values[field] = values.get(field, 0.0) + float(amount)

    hincrbyfloat = hincrby

    def lpush(self, key: str, value: bytes) -> None:
        self.lists.setdefault(key, []).insert(0, value)

    def ltrim(self, key: str, start: int, end: int) -> None:
        self.lists[key] = self.lists.get(key, [])[start : end + 1]

    def expire(self, key: str, seconds: int) -> None:
        """Replays end before anything expires."""

    def outcomes(self, tenant_id: int) -> dict[str, Tally]:
        return tallies(self.hashes.get(outcomes_key(tenant_id), {}))

    def rankings(self, config: TenantRouterConfig) -> dict[str, TenantRanking]:
        """As the gateway's router cache fits them (cache.RouterConfigCache.rankings)."""
        rankings = {}
        for version in config.thresholds:
            ranked = config.rankings.get(version)
            if needs_fitting(ranked, config.outcomes, version, config.quality_target):
                entries = self.lists.get(judged_key(config.tenant_id, version), [])
                judged = judgements(config.outcomes, version)
                ranked = tenant_ranking(entries, config.quality_target, judged)
            if ranked is not None:
                rankings[version] = ranked
        return rankings


def online_replay(
    model: RouterModel,
    test: Outcomes,
    target: float,
    learn: bool,
    seed: int = 0,
    adapt: bool = False,
    rank: bool = False,
) -> dict[str, Any]:
    """The live router on the test prompts in a random order, as one tenant's
    traffic: each answer's correctness is its feedback, recorded (when `learn`)
    for the tier that served it only, as the gateway records it; with `adapt`
    the tenant's threshold is also re-solved from those outcomes every
    REPLAY_REFRESH requests, as the gateway's router cache does, and with `rank`
    the scores re-ranked by the tenant's judged prompts (ranking.py). Reported over
    the first and the second half of the stream."""
    generator = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    router = LearnedRouter(explore=generator.random, classifiers=lambda _: model)
    catalog = replay_catalog()
    store = ReplayStore()
    config = TenantRouterConfig(REPLAY_TENANT, quality_target=target, exploration_rate=REPLAY_EXPLORATION)
    order = list(range(len(test)))
    generator.shuffle(order)
    strong_served, correct = np.zeros(len(order), dtype=bool), np.zeros(len(order), dtype=bool)
    thresholds = []
    for step, row in enumerate(order):
        if learn and step % REPLAY_REFRESH == 0:
            config = replace(config, outcomes=store.outcomes(REPLAY_TENANT))
            if adapt:
                config = replace(config, thresholds=adapted_thresholds(config))
            if rank:
                config = replace(config, rankings=store.rankings(config))
        prompt = test.prompts[row]
        request = RouteRequest(
            "auto", len(prompt) // 4 + 1, 256, prompt=prompt, request_id=str(step), routing=config
        )
        plan = router.plan(request, catalog, lambda _: True)
        assert isinstance(plan, RoutedPlan)
        assert plan.decision is not None
        decision = plan.decision
        thresholds.append(decision.threshold)
        strong_served[step] = decision.tier == 2
        correct[step] = test.strong[row] if strong_served[step] else test.weak[row]
        if learn:
            count_routed(store, REPLAY_TENANT, decision)
            observe(store, REPLAY_TENANT, decision, not correct[step], "replay")
    halves = {"first_half": slice(0, len(order) // 2), "second_half": slice(len(order) // 2, len(order))}
    strong_correct = test.strong[order]
    return {
        name: {
            "strong_share": round(float(strong_served[part].mean()), 4),
            "quality": round(float(correct[part].mean() / strong_correct[part].mean()), 4),
            "final_threshold": round(thresholds[part][-1], 4),
        }
        for name, part in halves.items()
    }


def subject_folds(subjects: list[str], folds: int, repetitions: int, first_seed: int = 0) -> list[list[str]]:
    """Leave-subjects-out cross-validation: per repetition, the subjects shuffled with
    its seed and dealt into `folds` groups, each held out once (so every subject is
    held out exactly once per repetition, next to about len/folds others)."""
    if not 2 <= folds <= len(subjects):
        raise ValueError(f"{folds} folds of {len(subjects)} subjects")
    held_out: list[list[str]] = []
    for seed in range(first_seed, first_seed + repetitions):
        shuffled = sorted(subjects)
        random.Random(seed).shuffle(shuffled)  # noqa: S311 - a fold assignment, not a secret
        held_out.extend(sorted(shuffled[fold::folds]) for fold in range(folds))
    return held_out
