"""The statistics against values worked out by hand (or by the textbook's formula),
and their promise of reproducibility."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from evals.statistics import (
    Change,
    Observed,
    aggregate,
    bootstrap_interval,
    bootstrap_means,
    compare,
    mcnemar_exact,
)


def observed(key: str, passed: bool, score: float | None = None, **fields: object) -> Observed:
    return Observed(key, passed, float(passed) if score is None else score, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("regressed", "improved", "p_value"),
    [
        (0, 0, 1.0),  # no discordant pair: no evidence either way
        (1, 7, 18 / 256),  # 2 * (C(8,0) + C(8,1)) / 2^8
        (7, 1, 18 / 256),  # two-sided: symmetric
        (0, 10, 2 / 1024),  # 2 * C(10,0) / 2^10
        (5, 5, 1.0),  # the 2x tail passes 1: capped
        (3, 12, 2 * (1 + 15 + 105 + 455) / 2**15),  # 0.03515625
    ],
)
def test_the_exact_mcnemar_test_gives_the_binomial_p_value(
    regressed: int, improved: int, p_value: float
) -> None:
    assert mcnemar_exact(regressed, improved) == pytest.approx(p_value, abs=1e-12)


def test_a_bootstrap_interval_contains_the_mean_and_is_reproducible() -> None:
    values = np.array([1.0] * 30 + [0.0] * 20)
    interval = bootstrap_interval(values)
    assert interval is not None
    low, high = interval
    assert low < 0.6 < high
    # About the normal approximation's half-width, 1.96 * sqrt(0.6 * 0.4 / 50) = 0.136.
    assert 0.10 < (high - low) / 2 < 0.17
    assert bootstrap_interval(values) == interval
    assert bootstrap_interval(values, seed=18) != interval


def test_a_bootstrap_of_identical_values_is_that_value_and_of_nothing_is_none() -> None:
    assert bootstrap_interval(np.array([0.5] * 7)) == (0.5, 0.5)
    assert bootstrap_interval(np.array([])) is None


def test_the_bootstrap_resamples_in_blocks_with_the_same_result_as_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = np.arange(40, dtype=float)
    whole = bootstrap_means(values, resamples=100)
    monkeypatch.setattr("evals.statistics.BLOCK_VALUES", 40 * 7)  # 7 resamples a block
    blocked = bootstrap_means(values, resamples=100)
    assert blocked.shape == (100,)
    # Drawn from one seeded generator in turn, block after block: the very same draws.
    assert np.array_equal(whole, blocked)


def test_aggregates_of_a_small_experiment_are_the_hand_counted_ones() -> None:
    results = [
        observed("a", True, 1.0, latency_ms=100, cost_usd=Decimal("0.001")),
        observed("b", True, 0.8, latency_ms=200, cost_usd=Decimal("0.002")),
        observed("c", False, 0.2, latency_ms=300, cost_usd=Decimal("0.003")),
        observed("d", False, 0.0, errored=True, latency_ms=400, cost_usd=Decimal(0)),
    ]
    stats = aggregate(results)
    assert (stats.n, stats.passed, stats.errors) == (4, 2, 1)
    assert stats.pass_rate == 0.5
    assert stats.mean_score == pytest.approx(0.5)
    assert stats.cost_usd == Decimal("0.006")
    # Linear interpolation between order statistics (numpy's default, as Excel's PERCENTILE.INC).
    assert stats.latency_p50_ms == 250.0
    assert stats.latency_p95_ms == pytest.approx(385.0)
    assert stats.pass_rate_ci is not None
    assert stats.pass_rate_ci[0] <= 0.5 <= stats.pass_rate_ci[1]
    assert stats.as_json()["ci_low"] == stats.pass_rate_ci[0]
    assert stats.as_json()["cost_usd"] == "0.006"


def test_aggregates_of_no_result_are_empty_not_an_error() -> None:
    stats = aggregate([])
    assert (stats.n, stats.pass_rate, stats.pass_rate_ci, stats.latency_p95_ms) == (0, None, None, None)
    assert stats.as_json()["latency_ms"] == {"p50": None, "p95": None}


def test_a_comparison_finds_the_planted_regressions_first_and_tests_them() -> None:
    baseline = [observed(f"k{n:02}", True) for n in range(20)] + [
        observed(f"k{n:02}", False) for n in range(20, 30)
    ]
    flipped_down = {"k03", "k07"}
    flipped_up = {"k20", "k21", "k22", "k23", "k24", "k25", "k26", "k27", "k28"}
    candidate = [
        observed(result.key, (result.passed and result.key not in flipped_down) or result.key in flipped_up)
        for result in baseline
    ]
    # Same verdict, a lower score by more than a step: a regression too; by less: unchanged.
    candidate[10] = observed("k10", True, 0.7)
    candidate[11] = observed("k11", True, 0.95)
    comparison = compare([*baseline, observed("gone", True)], [*candidate, observed("new", False)])

    assert [case.key for case in comparison.cases[:3]] == ["k03", "k07", "k10"]
    assert {case.change for case in comparison.cases[:3]} == {Change.REGRESSED}
    assert (comparison.count(Change.REGRESSED), comparison.count(Change.IMPROVED)) == (3, 9)
    assert comparison.count(Change.UNCHANGED) == 18
    assert comparison.regressions == 3
    assert (comparison.only_in_baseline, comparison.only_in_candidate) == (("gone",), ("new",))
    # McNemar counts verdict flips only: 2 down, 9 up; 2 * (1 + 11 + 55) / 2^11.
    assert comparison.mcnemar_p == pytest.approx(134 / 2048)
    assert not comparison.significant
    assert comparison.pass_rate_delta == pytest.approx(7 / 30)
    assert comparison.pass_rate_delta_ci is not None
    low, high = comparison.pass_rate_delta_ci
    assert low < 7 / 30 < high


def test_a_comparison_of_an_experiment_with_itself_changes_nothing() -> None:
    results = [observed(f"k{n}", n % 3 == 0, latency_ms=n * 10, cost_usd=Decimal("0.01")) for n in range(12)]
    comparison = compare(results, results)
    assert comparison.count(Change.UNCHANGED) == 12
    assert comparison.mcnemar_p == 1.0
    assert comparison.pass_rate_delta_ci == (0.0, 0.0)
    assert comparison.cost_delta_usd == Decimal(0)
    assert comparison.latency_p95_delta_ms == 0.0
