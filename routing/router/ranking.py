"""A tenant's own ranking: the classifier's score corrected by a small logistic
regression fitted to the tenant's judged outcomes, and the threshold re-solved on it.

The tenant threshold (adaptation.py) can only cut the ranking it is given, and the
global classifier ranks a domain it never saw barely better than chance (GSM8K
under a router trained on MMLU alone: a strong share of 0.77 at 95% quality,
random 0.80). What makes a prompt hard differs between domains, so the tenant's
judged outcomes of the cheapest tier re-weigh the prompt's hand features
(features.HAND_FEATURES: length, numbers, sentences, options...) beside the
classifier's log-odds: P(cheapest fails) = expit(b + a logit(score) + v . z),
z the features standardised over the kept judgements, fitted by penalised
maximum likelihood with the penalty PENALTY (a - 1)^2 + PENALTY |v|^2, so with
little evidence it stays the classifier's ranking. On GSM8K, five-fold, the
features refitted in-domain ranked with a strong share of 0.68 where the
prompts' embeddings (kNN or logistic) did no better than random (ADR 0048).

The corrected score is on a scale of its own, which moves with every fit, so
the threshold for it is re-solved (adaptation.solve_threshold) from the kept
judgements themselves, all scored by the current fit, every kept judgement
standing for the tenant's traffic.

Per tenant and router version the last MAX_JUDGED judged requests of the
cheapest and the top tier are kept (outcomes.py writes them on judgement):
which tier, whether it failed, the classifier's P(cheapest fails) and the top
tier's prior, and the hand features. No prompt text. Until each tier has
adaptation.MIN_JUDGED kept judgements, nothing changes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiaas.redis_keys import tenant_key
from routing.router.adaptation import CHEAP, ROUTED, TOP, bins, score_field, solve_threshold
from routing.router.config import Tally
from routing.router.features import HAND_FEATURES

MAX_JUDGED = 2000
PENALTY = 100.0
NEWTON_STEPS = 25
# New judgements of the two tiers before the correction is fitted again: a fit reads the
# whole kept list (MAX_JUDGED x ENTRY_BYTES) and costs about 20 ms, too much for every
# refresh of every tenant (cache.REFRESH_SECONDS).
REFIT_JUDGEMENTS = 50
# What a decision keeps of its prompt: the classifier's P(cheapest fails), the top
# tier's prior, then the hand features; a kept judgement adds which tier and whether
# it failed. A change of the hand features changes the size: older entries are dropped.
SUMMARY = struct.Struct(f"<ff{len(HAND_FEATURES)}f")
JUDGEMENT = struct.Struct("<??")
ENTRY_BYTES = JUDGEMENT.size + SUMMARY.size
SOLVED = "ranked"  # the version name the kept judgements are tallied under for the solve

FloatArray = npt.NDArray[np.float64]


def judged_key(tenant_id: int, version: str) -> str:
    """The Redis list of the tenant's kept judgements under `version`, newest first."""
    return tenant_key("router-judged", tenant_id, version)


def prompt_summary(hand: Sequence[float], score: float, top_prior: float) -> bytes:
    """What a decision keeps of its prompt for a later judgement (no text): its hand
    features (features.hand_features; the classifier's Prediction.hand) and scores."""
    return SUMMARY.pack(score, top_prior, *hand)


def entry(summary: bytes, top: bool, failed: bool) -> bytes:
    """One kept judgement of the tier (the top one when `top`) that served the prompt."""
    return JUDGEMENT.pack(top, failed) + summary


@dataclass(frozen=True)
class TenantRanking:
    """The tenant's fitted correction under one router version, and the threshold
    re-solved on the scores it corrects."""

    center: FloatArray  # the hand features' mean over the kept judgements
    scale: FloatArray  # and their standard deviation
    weights: FloatArray  # (intercept, logit(score), standardised hand features...)
    threshold: float
    target: float  # the quality target the threshold was solved for
    judged: float  # the tenant's judgements of the two tiers when it was fitted

    def corrected(self, summary: bytes) -> float:
        """P(cheapest tier fails) for the prompt of `summary`."""
        score, _, *hand = SUMMARY.unpack(summary)
        row = design(np.array([score]), np.array([hand]), self.center, self.scale)
        return float(expit(row @ self.weights)[0])


def judgements(outcomes: Mapping[str, Tally], version: str) -> float:
    """How many judgements of the cheapest and the top tier the tenant has under `version`."""
    return sum(tally.observations for role in (CHEAP, TOP) for tally in bins(outcomes, version, role))


def needs_fitting(
    previous: TenantRanking | None, outcomes: Mapping[str, Tally], version: str, target: float
) -> bool:
    """Whether the correction is to be fitted (again): none yet, a new quality target, or
    REFIT_JUDGEMENTS new judgements since the last fit."""
    if previous is None or previous.target != target:
        return True
    return judgements(outcomes, version) >= previous.judged + REFIT_JUDGEMENTS


def tenant_ranking(entries: Sequence[bytes], target: float, judged: float = 0.0) -> TenantRanking | None:
    """The correction fitted to a kept list, or None while the threshold on it cannot
    be solved (too few judgements of either tier); `judged` is the tenant's count of
    judgements (judgements()) it is fitted at."""
    kept = [struct.unpack(f"<??{SUMMARY.format[1:]}", raw) for raw in entries if len(raw) == ENTRY_BYTES]
    if not kept:
        return None
    rows = np.array(kept, dtype=np.float64)
    top, failed, scores, top_priors, hand = rows[:, 0] > 0, rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4:]
    center, scale = hand.mean(axis=0), hand.std(axis=0)
    scale[scale < 1e-9] = 1.0
    features = design(scores, hand, center, scale)
    weights = fit(features[~top], failed[~top])
    corrected = expit(features @ weights)
    outcomes: dict[str, Tally] = {}
    for index in range(len(kept)):
        score = float(corrected[index])
        add(outcomes, score_field(SOLVED, score, ROUTED), 0.0, 0.0)
        role, predicted = (TOP, float(top_priors[index])) if top[index] else (CHEAP, score)
        add(outcomes, score_field(SOLVED, score, role), float(failed[index]), predicted)
    threshold = solve_threshold(outcomes, SOLVED, target)
    if threshold is None:
        return None
    return TenantRanking(center, scale, weights, threshold, target, judged)


def design(scores: FloatArray, hand: FloatArray, center: FloatArray, scale: FloatArray) -> FloatArray:
    """Rows of (1, logit(score), standardised hand features)."""
    log_odds = np.log(np.clip(scores, 1e-4, 1 - 1e-4) / (1 - np.clip(scores, 1e-4, 1 - 1e-4)))
    return np.column_stack([np.ones(len(scores)), log_odds, (hand - center) / scale])


def fit(features: FloatArray, failed: FloatArray) -> FloatArray:
    """Penalised logistic regression by Newton's method, shrunk towards the classifier
    (weight 1 on its log-odds, 0 on the rest; the intercept is free)."""
    prior = np.zeros(features.shape[1])
    prior[1] = 1.0
    penalty = np.full(features.shape[1], PENALTY)
    penalty[0] = 0.0
    weights = prior.copy()
    for _ in range(NEWTON_STEPS):
        predicted = expit(features @ weights)
        gradient = features.T @ (predicted - failed) + penalty * (weights - prior)
        curvature = (features.T * (predicted * (1 - predicted))) @ features + np.diag(penalty + 1e-6)
        step = np.linalg.solve(curvature, gradient)
        weights -= step
        if float(np.abs(step).max()) < 1e-6:
            break
    return weights


def expit(values: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(values, -30.0, 30.0))), dtype=np.float64)


def add(outcomes: dict[str, Tally], field: str, failures: float, predicted: float) -> None:
    tally = outcomes.get(field, Tally())
    outcomes[field] = Tally(tally.failures + failures, tally.observations + 1, tally.predicted + predicted)
