"""A tenant's own threshold: re-solved from its judged outcomes.

The global threshold (RouterModel.threshold) is where the training data reached
the quality target. A tenant whose traffic is harder or easier than that data
misses its target or pays for more quality than it asked for: GSM8K replayed
through a router trained on MMLU alone reached 0.73 of the strong model's
quality with the global threshold, and 0.99 at a strong share of 0.94 once the
per-bucket outcomes corrected it, where 0.77 was enough with that ranking.

So every routed request is also counted by its score, the classifier's
calibrated P(cheapest tier fails) before the tenant's outcomes, in one of
SCORE_BINS equal bins: how many requests fell there (the tenant's traffic) and,
per judged request, whether the cheapest or the top tier failed there. From
these the re-solve estimates, per bin, P(cheapest fails) and P(top fails):
- the classifier's score, shifted on the log-odds scale by how far the tenant's
  judged failures of that tier are from what was predicted for them (every bin
  learns from every other's evidence), as the prior;
- each bin's own judged outcomes against that prior (PRIOR_STRENGTH
  pseudo-observations);
- made non-decreasing in the score (pool adjacent violators): a prompt the
  classifier finds harder is not easier for the tenant, which carries what the
  bins below the threshold teach (the cheapest tier is judged there) to the
  bins above it (mostly the top tier), and back.
Then it picks the highest threshold, interpolated inside a bin, at which the
expected quality over the tenant's traffic, less CONFIDENCE standard errors of
its estimate, reaches its target share of the top tier's: the least top-tier
traffic that meets the target. Until both tiers have
MIN_JUDGED judged requests the global threshold stays.

Judged requests come from the gateway (JSON schema checks) and users'
feedback; the cheapest tier is judged above the threshold through exploration
(policy.EXPLORATION_MARGIN), the top tier only above it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace

from routing.router.config import Tally, TenantRouterConfig, expit, logit

SCORE_BINS = 100
PRIOR_STRENGTH = 10.0  # pseudo-observations of the shifted classifier per bin
MIN_JUDGED = 50  # judged requests of each of the cheapest and the top tier
# Standard errors of the estimated quality kept above the target: the estimate is
# the tenant's outcomes so far, and a threshold that only meets the target on
# average misses it half the time.
CONFIDENCE = 1.0
CHEAP, TOP, ROUTED = "cheap", "top", "routed"


def score_bin(score: float) -> int:
    return min(SCORE_BINS - 1, max(0, int(score * SCORE_BINS)))


def dithered(score: float, request_id: str) -> float:
    """The score with its place inside its bin drawn from the request id (stable, uniform).
    The re-solved threshold may fall inside a bin and send part of it up, but a
    calibrated score has plateaus (isotonic regression): many prompts share one
    value, and a threshold cannot split them. Within a bin the ranking is given up
    (a hundredth of the scale) so that any share of it can go up, evenly, as the
    solve assumes."""
    place = (zlib.crc32(f"adaptation:{request_id}".encode()) % 10_000) / 10_000
    return (score_bin(score) + place) / SCORE_BINS


def score_field(version: str, score: float, role: str) -> str:
    """The outcomes hash field ("<version>|score:<bin>|<role>") counting requests of
    this score: all of them (ROUTED) or the judged ones of the CHEAP or TOP tier."""
    return f"{version}|score:{score_bin(score)}|{role}"


def role(tier: int, tiers: Sequence[int]) -> str | None:
    """Which end of the chain `tier` is, if either (a middle tier teaches nothing here)."""
    if len(tiers) < 2:
        return None
    return CHEAP if tier == tiers[0] else TOP if tier == tiers[-1] else None


def adapted_thresholds(config: TenantRouterConfig) -> dict[str, float]:
    """The re-solved threshold of each version the tenant runs that has enough outcomes."""
    versions = [config.control.name] + ([config.canary.name] if config.canary is not None else [])
    solved = {name: solve_threshold(config.outcomes, name, config.quality_target) for name in versions}
    return {name: threshold for name, threshold in solved.items() if threshold is not None}


def at_target(config: TenantRouterConfig, target: float) -> TenantRouterConfig:
    """`config` routing for `target` rather than the tenant's own (an evals experiment's,
    or the lower one of a degrade level): the thresholds re-solved for it, and only the
    rankings fitted at it (a ranking's threshold holds for the target it was solved for;
    without one the re-solved threshold applies to the classifier's score)."""
    if target == config.quality_target:
        return config
    moved = replace(config, quality_target=target)
    rankings = {version: fit for version, fit in config.rankings.items() if fit.target == target}
    return replace(moved, thresholds=adapted_thresholds(moved), rankings=rankings)


def bins(outcomes: Mapping[str, Tally], version: str, which: str) -> list[Tally]:
    return [outcomes.get(f"{version}|score:{index}|{which}", Tally()) for index in range(SCORE_BINS)]


def solve_threshold(outcomes: Mapping[str, Tally], version: str, target: float) -> float | None:
    """The tenant's threshold on P(cheapest fails) for `target`, or None while its
    judged outcomes are too few."""
    cheap, top = bins(outcomes, version, CHEAP), bins(outcomes, version, TOP)
    if sum(t.observations for t in cheap) < MIN_JUDGED or sum(t.observations for t in top) < MIN_JUDGED:
        return None
    traffic = [t.observations for t in bins(outcomes, version, ROUTED)]
    if sum(traffic) <= 0:
        traffic = [c.observations + t.observations for c, t in zip(cheap, top, strict=True)]
    scores = [
        t.predicted / t.observations if t.observations else (index + 0.5) / SCORE_BINS
        for index, t in enumerate(cheap)
    ]
    cheap_failure = failure_rates(cheap, scores)
    top_failure = failure_rates(top, [pooled_prior(top)] * SCORE_BINS)
    top_quality = sum(n * (1 - f) for n, f in zip(traffic, top_failure, strict=True))
    if top_quality <= 0:
        return None
    goal = target * top_quality
    # Sending every bin from `edge` up to the top tier: the expected quality, and the
    # variance of the estimated failures of the bins the cheapest tier then serves.
    quality, variance = top_quality, 0.0
    for edge in range(SCORE_BINS):
        gain = traffic[edge] * (top_failure[edge] - cheap_failure[edge])
        rate, evidence = cheap_failure[edge], cheap[edge].observations + PRIOR_STRENGTH
        added = traffic[edge] ** 2 * rate * (1 - rate) / evidence

        share = cheap_share(quality - goal, gain, variance, added)
        if share < 1.0:
            # Only the bottom `share` of this bin stays cheap (requests spread evenly
            # over the bin: the policy dithers them).
            return (edge + share) / SCORE_BINS
        quality, variance = quality + gain, variance + added
    return 1.0


def cheap_share(slack: float, gain: float, variance: float, added: float) -> float:
    """The largest share x of a bin the cheapest tier can serve while the quality,
    `slack` above the goal so far, stays above it by CONFIDENCE standard errors:
    slack + x gain >= CONFIDENCE sqrt(variance + x^2 added), by bisection."""

    def meets(share: float) -> bool:
        return slack + share * gain >= CONFIDENCE * math.sqrt(variance + share**2 * added)

    if meets(1.0):
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(20):
        middle = (low + high) / 2
        low, high = (middle, high) if meets(middle) else (low, middle)
    return low


def pooled_prior(tallies: Sequence[Tally]) -> float:
    """The mean P(fail) predicted for these judged requests."""
    observations = sum(t.observations for t in tallies)
    return sum(t.predicted for t in tallies) / observations if observations else 0.0


def failure_rates(tallies: Sequence[Tally], predicted: Sequence[float]) -> list[float]:
    """Per bin: the predicted rate shifted by the tenant's evidence over all bins,
    corrected by the bin's own, made non-decreasing."""
    observations = sum(t.observations for t in tallies)
    failures = sum(t.failures for t in tallies)
    expected = sum(t.predicted for t in tallies)
    # Observed vs predicted over every judged request, smoothed like one bin.
    predicted_rate = expected / observations
    observed_rate = (failures + PRIOR_STRENGTH * predicted_rate) / (observations + PRIOR_STRENGTH)
    shift = logit(observed_rate) - logit(predicted_rate)
    estimates, weights = [], []
    for tally, rate in zip(tallies, predicted, strict=True):
        prior = expit(logit(rate) + shift)
        estimates.append((tally.failures + PRIOR_STRENGTH * prior) / (tally.observations + PRIOR_STRENGTH))
        weights.append(tally.observations + PRIOR_STRENGTH)
    return non_decreasing(estimates, weights)


def non_decreasing(values: Sequence[float], weights: Sequence[float]) -> list[float]:
    """The weighted least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[tuple[float, float, int]] = []  # (mean, weight, length)
    for value, weight in zip(values, weights, strict=True):
        blocks.append((value, weight, 1))
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (mean, total, length), (before, before_total, before_length) = blocks.pop(), blocks.pop()
            weight = before_total + total
            blocks.append(((before * before_total + mean * total) / weight, weight, before_length + length))
    return [mean for mean, _, length in blocks for _ in range(length)]
