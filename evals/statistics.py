"""The numbers of experiments, reproducible: numpy only, every resampling seeded.

- One experiment (`aggregate`): pass rate and mean score, each with a 95%
  percentile bootstrap confidence interval (RESAMPLES resamples of its cases,
  seed SEED), cost, latency p50/p95. Errored cases count as not passed, score 0.
- Two experiments on the same cases, matched by key (`compare`): each case
  improved, regressed or unchanged (the verdict flipped; else the score moved
  by at least SCORE_STEP), an exact McNemar test on the pass/fail pairs, paired
  bootstrap intervals of the pass-rate and mean-score deltas, and the cost and
  latency deltas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

RESAMPLES = 2_000
SEED = 17
CONFIDENCE = 0.95
# A score moved this much with the same verdict is a change (one point of a 1-5 judge is 0.25).
SCORE_STEP = 0.1
SIGNIFICANCE = 0.05
# Resampled values held at once: bounds the bootstrap's memory whatever the number of cases.
BLOCK_VALUES = 4_000_000

Interval = tuple[float, float]


@dataclass(frozen=True)
class Observed:
    """One case's result, as the statistics see it."""

    key: str
    passed: bool
    score: float
    errored: bool = False
    latency_ms: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class Aggregates:
    n: int
    passed: int
    errors: int
    pass_rate: float | None
    pass_rate_ci: Interval | None
    mean_score: float | None
    score_ci: Interval | None
    cost_usd: Decimal
    latency_p50_ms: float | None
    latency_p95_ms: float | None

    def as_json(self) -> dict[str, Any]:
        """`Experiment.aggregates`: `ci_low`/`ci_high` bound the pass rate (what a gate reads)."""
        pass_low, pass_high = self.pass_rate_ci or (None, None)
        score_low, score_high = self.score_ci or (None, None)
        return {
            "n": self.n,
            "passed": self.passed,
            "errors": self.errors,
            "pass_rate": self.pass_rate,
            "ci_low": pass_low,
            "ci_high": pass_high,
            "mean_score": self.mean_score,
            "score_ci_low": score_low,
            "score_ci_high": score_high,
            "cost_usd": f"{self.cost_usd:f}",
            "latency_ms": {"p50": self.latency_p50_ms, "p95": self.latency_p95_ms},
        }


def aggregate(results: Sequence[Observed]) -> Aggregates:
    passed = np.array([result.passed for result in results], dtype=float)
    scores = np.array([result.score for result in results], dtype=float)
    latencies = np.array([result.latency_ms for result in results], dtype=float)
    p50, p95 = percentiles(latencies, (50, 95))
    return Aggregates(
        n=len(results),
        passed=int(passed.sum()),
        errors=sum(result.errored for result in results),
        pass_rate=mean(passed),
        pass_rate_ci=bootstrap_interval(passed),
        mean_score=mean(scores),
        score_ci=bootstrap_interval(scores),
        cost_usd=sum((result.cost_usd for result in results), Decimal(0)),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
    )


def mean(values: npt.NDArray[np.float64]) -> float | None:
    return float(values.mean()) if values.size else None


def percentiles(values: npt.NDArray[np.float64], points: tuple[int, ...]) -> tuple[float | None, ...]:
    if not values.size:
        return tuple(None for _ in points)
    return tuple(float(value) for value in np.percentile(values, points))


def bootstrap_means(values: npt.NDArray[np.float64], resamples: int = RESAMPLES, seed: int = SEED) -> Any:
    """The means of `resamples` resamples (with replacement) of `values`, seeded."""
    generator = np.random.default_rng(seed)
    size = values.size
    rows = max(1, BLOCK_VALUES // size)
    blocks = []
    for start in range(0, resamples, rows):
        picks = generator.integers(0, size, size=(min(rows, resamples - start), size))
        blocks.append(values[picks].mean(axis=1))
    return np.concatenate(blocks)


def bootstrap_interval(
    values: npt.NDArray[np.float64], resamples: int = RESAMPLES, seed: int = SEED
) -> Interval | None:
    """The 95% percentile bootstrap interval of the mean of `values`; None without values."""
    if not values.size:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(bootstrap_means(values, resamples, seed), (tail, 100 - tail))
    return float(low), float(high)


def mcnemar_exact(regressed: int, improved: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs as a fair coin's tosses
    (a binomial test of `regressed` among `regressed + improved` at 1/2)."""
    discordant = regressed + improved
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(regressed, improved) + 1))
    return min(1.0, float(2 * tail / 2**discordant))


class Change(StrEnum):
    REGRESSED = "regressed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class CaseChange:
    key: str
    change: Change
    baseline: Observed
    candidate: Observed

    @property
    def score_delta(self) -> float:
        return self.candidate.score - self.baseline.score


@dataclass(frozen=True)
class Comparison:
    """A candidate experiment against a baseline, on the cases both have."""

    cases: tuple[CaseChange, ...]  # regressions first, then improvements, then the rest; by key within
    only_in_baseline: tuple[str, ...]
    only_in_candidate: tuple[str, ...]
    mcnemar_p: float
    pass_rate_delta: float | None
    pass_rate_delta_ci: Interval | None
    mean_score_delta: float | None
    mean_score_delta_ci: Interval | None
    cost_delta_usd: Decimal
    latency_p50_delta_ms: float | None
    latency_p95_delta_ms: float | None

    def count(self, change: Change) -> int:
        return sum(case.change == change for case in self.cases)

    @property
    def regressions(self) -> int:
        return self.count(Change.REGRESSED)

    @property
    def significant(self) -> bool:
        """The pass/fail difference is unlikely to be chance (McNemar, p < 0.05)."""
        return self.mcnemar_p < SIGNIFICANCE


def change_of(baseline: Observed, candidate: Observed) -> Change:
    if baseline.passed != candidate.passed:
        return Change.IMPROVED if candidate.passed else Change.REGRESSED
    if candidate.score - baseline.score >= SCORE_STEP:
        return Change.IMPROVED
    if baseline.score - candidate.score >= SCORE_STEP:
        return Change.REGRESSED
    return Change.UNCHANGED


ORDER = {Change.REGRESSED: 0, Change.IMPROVED: 1, Change.UNCHANGED: 2}


def compare(baseline: Sequence[Observed], candidate: Sequence[Observed]) -> Comparison:
    by_key = {result.key: result for result in baseline}
    candidates = {result.key: result for result in candidate}
    matched = [(by_key[key], candidates[key]) for key in sorted(by_key.keys() & candidates.keys())]
    cases = sorted(
        (CaseChange(base.key, change_of(base, cand), base, cand) for base, cand in matched),
        key=lambda case: (ORDER[case.change], case.key),
    )
    flips = [(base.passed, cand.passed) for base, cand in matched]
    regressed = sum(before and not after for before, after in flips)
    improved = sum(after and not before for before, after in flips)
    pass_deltas = np.array([float(cand.passed) - float(base.passed) for base, cand in matched])
    score_deltas = np.array([cand.score - base.score for base, cand in matched])
    base_stats, cand_stats = aggregate([b for b, _ in matched]), aggregate([c for _, c in matched])
    return Comparison(
        cases=tuple(cases),
        only_in_baseline=tuple(sorted(by_key.keys() - candidates.keys())),
        only_in_candidate=tuple(sorted(candidates.keys() - by_key.keys())),
        mcnemar_p=mcnemar_exact(regressed, improved),
        pass_rate_delta=mean(pass_deltas),
        pass_rate_delta_ci=bootstrap_interval(pass_deltas),
        mean_score_delta=mean(score_deltas),
        mean_score_delta_ci=bootstrap_interval(score_deltas),
        cost_delta_usd=cand_stats.cost_usd - base_stats.cost_usd,
        latency_p50_delta_ms=difference(cand_stats.latency_p50_ms, base_stats.latency_p50_ms),
        latency_p95_delta_ms=difference(cand_stats.latency_p95_ms, base_stats.latency_p95_ms),
    )


def difference(candidate: float | None, baseline: float | None) -> float | None:
    return None if candidate is None or baseline is None else candidate - baseline
