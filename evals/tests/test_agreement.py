"""Cohen's kappa of a judge against people's labels, checked against values worked
out by hand (and scikit-learn's), including the sets where kappa is undefined."""

from __future__ import annotations

import random

import pytest
from django_tenants.utils import tenant_context
from sklearn.metrics import cohen_kappa_score

from evals.agreement import band_of, cohen_kappa, judge_agreement
from evals.models import Case, CaseResult, Dataset, DatasetVersion, Experiment, ResultStatus
from testing.tenants import TenantFixture


def pairs(both_passed: int, both_failed: int, judge_only: int, person_only: int) -> list[tuple[bool, bool]]:
    return (
        [(True, True)] * both_passed
        + [(False, False)] * both_failed
        + [(True, False)] * judge_only
        + [(False, True)] * person_only
    )


def test_kappa_matches_the_hand_computed_value() -> None:
    # po = 35/50 = 0.7; judge passes 25/50, people 30/50: pe = 0.5*0.6 + 0.5*0.4 = 0.5;
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    agreement = cohen_kappa(pairs(20, 15, 5, 10))

    assert agreement.n == 50
    assert agreement.raw_agreement == pytest.approx(0.7)
    assert agreement.kappa == pytest.approx(0.4)
    assert agreement.band == "fair"
    assert (agreement.both_passed, agreement.both_failed) == (20, 15)
    assert (agreement.judge_passed_person_failed, agreement.judge_failed_person_passed) == (5, 10)


def test_kappa_of_a_second_hand_computed_set() -> None:
    # po = 9/10; judge passes 6/10, people 5/10: pe = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = 0.8
    agreement = cohen_kappa(pairs(5, 4, 1, 0))

    assert agreement.kappa == pytest.approx(0.8)
    assert agreement.band == "substantial"


def test_perfect_and_opposite_verdicts() -> None:
    assert cohen_kappa(pairs(3, 2, 0, 0)).kappa == pytest.approx(1.0)
    assert cohen_kappa(pairs(3, 2, 0, 0)).band == "almost perfect"
    opposite = cohen_kappa(pairs(0, 0, 2, 2))
    assert (opposite.raw_agreement, opposite.kappa, opposite.band) == (0.0, -1.0, "poor")


def test_a_judge_that_always_passes_earns_no_kappa_for_its_raw_agreement() -> None:
    # po = 0.75; the judge passes all, people 3 of 4: pe = 1*0.75 + 0*0.25 = 0.75; kappa = 0
    agreement = cohen_kappa(pairs(3, 0, 1, 0))

    assert (agreement.raw_agreement, agreement.kappa, agreement.band) == (0.75, 0.0, "slight")


def test_no_labels_and_one_shared_verdict_are_reported_without_dividing_by_zero() -> None:
    empty = cohen_kappa([])
    assert (empty.n, empty.raw_agreement, empty.kappa, empty.band) == (0, None, None, "no labelled results")
    one_class = cohen_kappa(pairs(7, 0, 0, 0))
    assert (one_class.n, one_class.raw_agreement, one_class.kappa) == (7, 1.0, None)
    assert one_class.band == "undefined: one verdict for every case"
    assert cohen_kappa(pairs(0, 4, 0, 0)).kappa is None


@pytest.mark.parametrize(
    ("kappa", "band"),
    [
        (-0.01, "poor"),
        (0.0, "slight"),
        (0.2, "slight"),
        (0.21, "fair"),
        (0.4, "fair"),
        (0.5, "moderate"),
        (0.6, "moderate"),
        (0.7, "substantial"),
        (0.8, "substantial"),
        (0.81, "almost perfect"),
        (1.0, "almost perfect"),
    ],
)
def test_landis_and_koch_bands(kappa: float, band: str) -> None:
    assert band_of(kappa) == band


def test_kappa_agrees_with_scikit_learn() -> None:
    generator = random.Random(17)
    for _ in range(20):
        verdicts = [
            (generator.random() < 0.6, generator.random() < 0.5) for _ in range(generator.randint(5, 60))
        ]
        judge, person = zip(*verdicts, strict=True)
        if len(set(judge) | set(person)) < 2:
            continue
        assert cohen_kappa(verdicts).kappa == pytest.approx(cohen_kappa_score(judge, person))


def test_an_experiments_agreement_reads_its_labelled_results(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        version = DatasetVersion.objects.create(dataset=Dataset.objects.create(name="agreement"), version=1)
        experiment = Experiment.objects.create(version=version, target_kind="model", target={}, api_key_id=1)
        # (case verdict, the judge's verdict, the person's label)
        rows = [
            (True, True, True),
            (True, True, True),
            (False, False, False),
            (False, True, False),
            (True, True, None),
            (False, False, True),
        ]
        for position, (passed, judged, label) in enumerate(rows):
            case = Case.objects.create(version=version, key=f"c{position}", position=position, input={})
            scores = [{"scorer": "judge", "score": float(judged), "passed": judged, "reason": ""}]
            CaseResult.objects.create(
                experiment=experiment,
                case=case,
                status=ResultStatus.SUCCEEDED,
                scores=scores,
                passed=passed,
                score=float(passed),
                human_label=label,
            )

        overall = judge_agreement(experiment)
        judge = judge_agreement(experiment, "judge")
        unknown = judge_agreement(experiment, "no-such-scorer")

    # Labelled: 5. Case verdicts vs labels: TT TT FF FF FT -> po 4/5; pass rates 2/5 and 3/5:
    # pe = 0.4*0.6 + 0.6*0.4 = 0.48; kappa = (0.8 - 0.48) / 0.52
    assert (overall.n, overall.raw_agreement) == (5, 0.8)
    assert overall.kappa == pytest.approx(0.32 / 0.52)
    # The judge's: TT TT FF TF FT -> po 3/5; pass rates 3/5 and 3/5: pe = 0.52; kappa = 0.08 / 0.48
    assert (judge.n, judge.raw_agreement) == (5, 0.6)
    assert judge.kappa == pytest.approx(0.08 / 0.48)
    assert judge.band == "slight"
    assert unknown.n == 0
