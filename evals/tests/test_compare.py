"""Two experiments of one dataset compared case by case, and a gate's inputs, on
answers planted through the simulated provider: the candidate asks for 2 words
where the baseline asked for 8, so a case expecting a later word regresses and a
case forbidding one improves."""

from __future__ import annotations

from typing import Any

import pytest

from evals import selectors
from evals.models import Experiment
from evals.statistics import Change, mcnemar_exact
from evals.tests.experiments import answer_to, create, in_tenant, make_version, run
from testing.tenants import TenantFixture

CASES = 20


def test_compare_finds_the_planted_regressions_and_improvements(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    contents = [f"Compare case {n}." for n in range(CASES)]
    long_answers = [answer_to(content).split() for content in contents]
    short_answers = [" ".join(words[:2]) for words in long_answers]
    expected = [words[4] if n < 6 else words[0] for n, words in enumerate(long_answers)]
    forbidden: list[list[dict[str, Any]]] = [
        [{"type": "not_contains", "value": words[5]}] if 6 <= n < 10 else []
        for n, words in enumerate(long_answers)
    ]
    version_id = make_version(
        serving_tenant,
        [{"messages": [{"role": "user", "content": content}]} for content in contents],
        expected=expected,
        assertions=forbidden,
        version_assertions=[{"type": "contains"}],
    )
    baseline = run(
        serving_tenant,
        create(serving_tenant, version_id, target={"model": "sim-small", "params": {"max_tokens": 8}}),
    )
    candidate = run(
        serving_tenant,
        create(serving_tenant, version_id, target={"model": "sim-small", "params": {"max_tokens": 2}}),
    )
    regressed = {f"case-{n:03}" for n in range(6) if expected[n] not in short_answers[n]}
    improved = {f"case-{n:03}" for n in range(6, 10) if long_answers[n][5] not in short_answers[n]}
    assert len(regressed) >= 4
    assert len(improved) >= 3

    def compared() -> tuple[Any, Any]:
        a, b = (Experiment.objects.select_related("version").get(pk=pk) for pk in (candidate.pk, baseline.pk))
        return selectors.compare(a, b), selectors.gate_inputs(a, b)

    comparison, gate = in_tenant(serving_tenant, compared)

    assert {case.key for case in comparison.cases if case.change == Change.REGRESSED} == regressed
    assert {case.key for case in comparison.cases if case.change == Change.IMPROVED} == improved
    assert {case.change for case in comparison.cases[: len(regressed)]} == {Change.REGRESSED}
    assert comparison.count(Change.UNCHANGED) == CASES - len(regressed) - len(improved)
    assert comparison.mcnemar_p == mcnemar_exact(len(regressed), len(improved))
    assert comparison.pass_rate_delta == pytest.approx((len(improved) - len(regressed)) / CASES)
    assert comparison.cost_delta_usd < 0  # fewer words, cheaper
    assert gate.regressions == len(regressed)
    assert gate.n == CASES
    assert gate.pass_rate == candidate.aggregates["pass_rate"]  # type: ignore[index]
    assert (gate.ci_low, gate.ci_high) == (candidate.aggregates["ci_low"], candidate.aggregates["ci_high"])  # type: ignore[index]


def test_experiments_of_two_datasets_are_not_compared(serving_tenant: TenantFixture, gateway: str) -> None:
    inputs = [{"messages": [{"role": "user", "content": "one"}]}]
    first = create(serving_tenant, make_version(serving_tenant, inputs))
    second = create(serving_tenant, make_version(serving_tenant, inputs))

    def compared() -> None:
        selectors.compare(Experiment.objects.get(pk=first), Experiment.objects.get(pk=second))

    with pytest.raises(selectors.ComparisonError, match="not of the same dataset"):
        in_tenant(serving_tenant, compared)
