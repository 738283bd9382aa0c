"""Training the router's classifier on outcome data (scikit-learn, offline only).

Data is RouteLLM's format: a `prompt` column and one True/False column per
model saying whether that model answered correctly. The label is "the weak
(cheap) model failed". The pipeline: sublinear TF-IDF over unigrams and
bigrams, a 100-dimensional latent semantic projection (TruncatedSVD) next to
the hand-made features, standardised, the prompt's sentence embedding (unit
length, as served) beside them, and an L2 logistic regression; it is all
linear, so it is exported folded into per-term and per-dimension weights
(routing/router/model.py). The choices (features, C, dimensions) were made on
leave-subjects-out folds (bench/routing.py, ADR 0046).
Calibration: isotonic regression fitted on out-of-fold scores (5 folds), so the
probabilities are honest on prompts the model did not see.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from routing.router.embedding import embed_many
from routing.router.features import HAND_FEATURES, hand_features
from routing.router.model import FloatArray, RouterModel

# RouteLLM's published outcomes (Apache-2.0), carried in the repository: routing/data/README.md.
OUTCOME_DATA = Path(__file__).resolve().parent.parent / "data"
DEFAULT_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
DEFAULT_STRONG = "gpt-4-1106-preview"
MAX_TERMS = 20_000
CLASSIFIER_DIMENSIONS = 100
CLUSTER_DIMENSIONS = 32
CLUSTERS = 32
REGULARISATION = 0.1  # logistic regression's C, chosen on leave-subjects-out folds of MMLU
EMBEDDING_DIMENSIONS = 256  # of wordllama's 256; 0 for a TF-IDF-only model
TARGETS = [round(0.80 + 0.01 * step, 2) for step in range(21)]
SEED = 0

csv.field_size_limit(sys.maxsize)


@dataclass
class Outcomes:
    prompts: list[str]
    weak: npt.NDArray[np.bool_]
    strong: npt.NDArray[np.bool_]
    sources: list[str]

    def __len__(self) -> int:
        return len(self.prompts)


class DataError(ValueError):
    """The outcome files are missing, empty, or lack a needed column."""


def csv_files(paths: Iterable[str | Path]) -> list[Path]:
    """`paths` with every folder replaced by the CSV files in it (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(path.glob("*.csv")))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    if not files:
        raise DataError("no CSV files in " + ", ".join(map(str, paths)))
    return files


def load_outcomes(
    paths: Iterable[str | Path], weak: str = DEFAULT_WEAK, strong: str = DEFAULT_STRONG
) -> Outcomes:
    prompts: list[str] = []
    weak_correct: list[bool] = []
    strong_correct: list[bool] = []
    sources: list[str] = []
    for path in csv_files(paths):
        try:
            with path.open(newline="", encoding="utf-8") as file:
                reader = csv.DictReader(file)
                missing = {"prompt", weak, strong} - set(reader.fieldnames or [])
                if missing:
                    raise DataError(f"{path}: no column {', '.join(sorted(missing))}")
                for row in reader:
                    where = f"{path}, line {reader.line_num}"
                    prompts.append(cell(row, "prompt", where))
                    weak_correct.append(verdict(cell(row, weak, where), where))
                    strong_correct.append(verdict(cell(row, strong, where), where))
                    sources.append(path.stem)
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from None
        except csv.Error as error:
            raise DataError(f"{path}: not CSV ({error})") from None
    if not prompts:
        raise DataError("the outcome files hold no rows")
    return Outcomes(prompts, np.array(weak_correct), np.array(strong_correct), sources)


VERDICTS = {"true": True, "1": True, "false": False, "0": False}


def cell(row: dict[str, str | None], column: str, where: str) -> str:
    value = row.get(column)
    if value is None:
        raise DataError(f"{where}: the row has no {column!r} value")
    return value


def verdict(value: str, where: str) -> bool:
    """A model's correctness as the files write it: True/False (RouteLLM's), or 1/0."""
    try:
        return VERDICTS[value.strip().lower()]
    except KeyError:
        raise DataError(f"{where}: {value!r} is not True or False") from None


def hand_matrix(prompts: Sequence[str]) -> FloatArray:
    return np.array([hand_features(prompt) for prompt in prompts], dtype=np.float64)


def calibration_error(probabilities: FloatArray, outcomes: npt.NDArray[np.bool_], bins: int = 10) -> float:
    """Expected calibration error: the gap between predicted and observed rates,
    averaged over equal-width probability bins weighted by their size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for bin_index in range(bins):
        members = which == bin_index
        if members.any():
            error += members.mean() * abs(probabilities[members].mean() - outcomes[members].mean())
    return float(error)


def thresholds_for(probabilities: FloatArray, outcomes: Outcomes) -> dict[str, float]:
    """For each quality target, the P(fail) threshold at which routing every prompt
    above it to the strong model reached target x strong accuracy on these data."""
    order = np.argsort(-probabilities, kind="stable")
    gains = outcomes.strong[order].astype(int) - outcomes.weak[order].astype(int)
    correct = outcomes.weak.sum() + np.concatenate([[0], np.cumsum(gains)])
    strong_accuracy = outcomes.strong.mean()
    table = {}
    for target in TARGETS:
        reached = np.flatnonzero(correct / len(outcomes) >= target * strong_accuracy - 1e-12)
        routed = int(reached[0]) if reached.size else len(outcomes)
        # Route the `routed` most likely failures: the threshold sits just above the next one.
        threshold = 1.0 if routed == 0 else float(probabilities[order[routed - 1]]) - 1e-9
        table[f"{target:.2f}"] = max(threshold, 0.0)
    return table


def train(
    outcomes: Outcomes,
    name: str = "router",
    embedding_dimensions: int = EMBEDDING_DIMENSIONS,
    embeddings: FloatArray | None = None,
) -> RouterModel:
    """`embeddings`: the prompts' (n, 256) embeddings when already computed (the bench)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    if len(outcomes) < 50:
        raise DataError(f"{len(outcomes)} training rows: at least 50 are needed")
    failed = ~outcomes.weak
    if failed.all() or not failed.any():
        raise DataError("the weak model must both pass and fail in the training data")
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=MAX_TERMS)
    tfidf = vectorizer.fit_transform(outcomes.prompts)
    dimensions = min(CLASSIFIER_DIMENSIONS, tfidf.shape[1] - 1)
    svd = TruncatedSVD(dimensions, random_state=SEED).fit(tfidf)
    hand = hand_matrix(outcomes.prompts)
    features = np.hstack([hand, svd.transform(tfidf)])
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0
    standardised = (features - mean) / scale
    if embedding_dimensions:
        if embeddings is None:
            embeddings = embed_many(outcomes.prompts, embedding_dimensions)
        prefix = embeddings[:, :embedding_dimensions]
        standardised = np.hstack([standardised, prefix / np.linalg.norm(prefix, axis=1, keepdims=True)])

    def classifier() -> Any:
        return LogisticRegression(C=REGULARISATION, max_iter=5000)

    def isotonic() -> Any:
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)

    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(standardised, failed))
    out_of_fold = np.zeros(len(outcomes))
    for fit_rows, held_rows in folds:
        fold = classifier().fit(standardised[fit_rows], failed[fit_rows])
        out_of_fold[held_rows] = fold.decision_function(standardised[held_rows])
    calibration = isotonic().fit(out_of_fold, failed)
    calibrated = calibration.predict(out_of_fold)
    # The calibration's own error, measured on folds its isotonic fit did not see.
    held_out = np.zeros(len(outcomes))
    for fit_rows, held_rows in folds:
        held_out[held_rows] = (
            isotonic().fit(out_of_fold[fit_rows], failed[fit_rows]).predict(out_of_fold[held_rows])
        )
    model = classifier().fit(standardised, failed)

    # Fold scaling and the projection into weights on the raw features.
    weights = model.coef_[0][: len(scale)] / scale
    hand_count = len(HAND_FEATURES)
    bias = float(model.intercept_[0] - weights @ mean)
    term_weights = svd.components_.T @ weights[hand_count:]

    latent = svd.components_[:CLUSTER_DIMENSIONS]
    points = tfidf @ latent.T
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    unit = points / np.where(norms == 0, 1, norms)
    clusters = min(CLUSTERS, len(outcomes) // 10)
    kmeans = KMeans(clusters, n_init=4, random_state=SEED).fit(unit)
    centroids = kmeans.cluster_centers_ / np.linalg.norm(kmeans.cluster_centers_, axis=1, keepdims=True)
    router = RouterModel(
        vocabulary={str(term): int(index) for term, index in vectorizer.vocabulary_.items()},
        idf=vectorizer.idf_,
        term_weights=term_weights,
        hand_weights=weights[:hand_count],
        embedding_weights=model.coef_[0][len(scale) :],
        bias=bias,
        projection=latent,
        centroids=centroids,
        calibration_x=calibration.X_thresholds_,
        calibration_y=calibration.y_thresholds_,
        thresholds=thresholds_for(calibrated, outcomes),
        meta={
            "name": name,
            "n_train": len(outcomes),
            "sources": sorted(set(outcomes.sources)),
            "weak_accuracy": float(outcomes.weak.mean()),
            "strong_accuracy": float(outcomes.strong.mean()),
            "embedding_dimensions": embedding_dimensions,
            "calibration_error_out_of_fold": calibration_error(held_out, failed),
        },
    )
    # The folded weights and our tokenizer must give scikit-learn's own scores.
    sample = np.arange(min(200, len(outcomes)))
    served = np.array([router.logit(outcomes.prompts[row]) for row in sample])
    if not np.allclose(served, model.decision_function(standardised[sample]), atol=1e-6):
        raise AssertionError("the exported router does not reproduce the trained pipeline's scores")
    return router
