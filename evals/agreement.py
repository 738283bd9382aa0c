"""How far a judge can be trusted: its pass/fail verdicts against people's labels
(`CaseResult.human_label`), as Cohen's kappa (agreement beyond what chance
gives two raters with these pass rates), the raw agreement, and n.

Degenerate sets never divide by zero: with no labelled results every measure
is None; when both sides gave one and the same verdict to every case, chance
explains all agreement and kappa is undefined (None), though raw agreement is 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from evals.models import CaseResult, Experiment

# Landis & Koch (1977): below 0 "poor", then each band up to its bound.
BANDS = ((0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial"), (1.0, "almost perfect"))


@dataclass(frozen=True)
class Agreement:
    n: int
    raw_agreement: float | None  # the share of cases where judge and person agree
    kappa: float | None
    band: str  # Landis & Koch's word for kappa; says why when kappa is None
    # The confusion matrix: judge verdict first, then the person's.
    both_passed: int
    both_failed: int
    judge_passed_person_failed: int
    judge_failed_person_passed: int

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "raw_agreement": self.raw_agreement,
            "kappa": self.kappa,
            "band": self.band,
            "both_passed": self.both_passed,
            "both_failed": self.both_failed,
            "judge_passed_person_failed": self.judge_passed_person_failed,
            "judge_failed_person_passed": self.judge_failed_person_passed,
        }


def band_of(kappa: float) -> str:
    if kappa < 0:
        return "poor"
    return next((name for upper, name in BANDS if kappa <= upper), "almost perfect")


def cohen_kappa(pairs: Iterable[tuple[bool, bool]]) -> Agreement:
    """Agreement over (judge passed, person passed) pairs."""
    counts = {(True, True): 0, (False, False): 0, (True, False): 0, (False, True): 0}
    for judge, person in pairs:
        counts[(bool(judge), bool(person))] += 1
    matrix = (counts[True, True], counts[False, False], counts[True, False], counts[False, True])
    n = sum(matrix)
    if n == 0:
        return Agreement(0, None, None, "no labelled results", *matrix)
    observed = (counts[True, True] + counts[False, False]) / n
    judge_pass = (counts[True, True] + counts[True, False]) / n
    person_pass = (counts[True, True] + counts[False, True]) / n
    chance = judge_pass * person_pass + (1 - judge_pass) * (1 - person_pass)
    if chance == 1:
        return Agreement(n, observed, None, "undefined: one verdict for every case", *matrix)
    kappa = (observed - chance) / (1 - chance)
    return Agreement(n, observed, kappa, band_of(kappa), *matrix)


def verdict_of(result: CaseResult, scorer: str | None) -> bool | None:
    """The case's verdict (scorer None), or that scorer's; None when it did not score the case."""
    if scorer is None:
        return result.passed
    for entry in result.scores:
        if isinstance(entry, dict) and entry.get("scorer") == scorer:
            return bool(entry.get("passed"))
    return None


def judge_agreement(experiment: Experiment, scorer: str | None = None) -> Agreement:
    """The agreement with people's labels of an experiment's verdicts, or of one scorer's
    (by its name) over the labelled cases it scored. Reads the current tenant's schema."""
    results = experiment.results.filter(human_label__isnull=False).only("passed", "scores", "human_label")
    pairs = []
    for result in results:
        verdict = verdict_of(result, scorer)
        if verdict is not None and result.human_label is not None:
            pairs.append((verdict, result.human_label))
    return cohen_kappa(pairs)
