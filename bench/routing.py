"""The router's candidates offline, on a protocol that cannot overfit one split.

    python bench/routing.py [--folds 4] [--repetitions 2] [--quick] [--target 0.95] [--json PATH]

Leave-subjects-out cross-validation over the 38 MMLU subjects: per repetition
the subjects are dealt into `--folds` groups (routing.router.evaluation.
subject_folds), each held out once, so every test fold mixes about ten subjects
the router never saw, like a tenant's traffic. Per candidate: the median and
the 90% interval (5th-95th percentile) of the strong share needed for 95% of
the strong model's quality, the random router's, the oracle's and the subject
oracle's (which knows only each held-out subject's mean gain) on the same
folds, and APGR; then two whole tasks held out: GSM8K scored by a router
trained on MMLU alone, MT-Bench (a turn passes when GPT-4 judged it 8 or more
of 10) by one trained on MMLU and GSM8K. Every design choice is made on the
folds' median, never on one split or on the held-out tasks. The shipped
router's own decision latency is measured with route_bench's code on the
first fold. `make bench-routing` runs it; it makes no query.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import django
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
django.setup()  # the router's code imports the registry's models (no query is made)

from bench.routing_form import question_form  # noqa: E402
from routing.router.embedding import embed_many  # noqa: E402
from routing.router.evaluation import (  # noqa: E402
    curve_metrics,
    evaluate,
    online_replay,
    random_share,
    subject_folds,
)
from routing.router.model import FloatArray  # noqa: E402
from routing.router.training import (  # noqa: E402
    CLASSIFIER_DIMENSIONS,
    MAX_TERMS,
    OUTCOME_DATA,
    Outcomes,
    hand_matrix,
    load_outcomes,
    train,
)

DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "routing.json"
MT_BENCH_PASS = 8  # GPT-4's judgement, of 10
MODELS = {"weak": "mistralai/Mixtral-8x7B-Instruct-v0.1", "strong": "gpt-4-1106-preview"}

Rows = np.ndarray
Scorer = Callable[["Corpus", Rows, Rows], FloatArray]


class Corpus:
    """Every prompt of the routing data once, with its features computed once."""

    def __init__(self, data: Path) -> None:
        parts = [load_outcomes([*sorted((data / "mmlu").glob("*.csv")), data / "gsm8k_responses.csv"])]
        parts.append(mt_bench(data))
        self.outcomes = Outcomes(
            [p for part in parts for p in part.prompts],
            np.concatenate([part.weak for part in parts]),
            np.concatenate([part.strong for part in parts]),
            [s for part in parts for s in part.sources],
        )
        self.sources = np.array(self.outcomes.sources)
        self.embeddings = embed_many(self.outcomes.prompts, 256)
        self.hand = hand_matrix(self.outcomes.prompts)
        self.form = np.array([question_form(prompt) for prompt in self.outcomes.prompts])
        self.gain = self.outcomes.strong.astype(np.float64) - self.outcomes.weak

    def subset(self, rows: Rows) -> Outcomes:
        every = self.outcomes
        return Outcomes(
            [every.prompts[i] for i in rows],
            every.weak[rows],
            every.strong[rows],
            [every.sources[i] for i in rows],
        )

    def rows(self, sources: set[str]) -> Rows:
        return np.flatnonzero(np.isin(self.sources, sorted(sources)))


def mt_bench(data: Path) -> Outcomes:
    """MT-Bench's 80 questions x 2 turns; a turn's prompt is the user turns so far."""
    questions = {
        row["question_id"]: row["turns"]
        for row in map(json.loads, (data / "mt_bench_questions.jsonl").read_text().splitlines())
    }
    scores: dict[tuple[int, int, str], int] = {}
    for row in map(json.loads, (data / "mt_bench_judgements.jsonl").read_text().splitlines()):
        scores[(row["question_id"], row["turn"], row["model"])] = row["score"]
    keys = sorted({(question, turn) for question, turn, _ in scores})
    return Outcomes(
        ["\n".join(questions[question][:turn]) for question, turn in keys],
        np.array([scores[(q, t, MODELS["weak"])] >= MT_BENCH_PASS for q, t in keys]),
        np.array([scores[(q, t, MODELS["strong"])] >= MT_BENCH_PASS for q, t in keys]),
        ["mt_bench"] * len(keys),
    )


def standardised(train: FloatArray, test: FloatArray) -> tuple[FloatArray, FloatArray]:
    mean, scale = train.mean(axis=0), train.std(axis=0)
    scale[scale == 0] = 1.0
    return (train - mean) / scale, (test - mean) / scale


def trained(embedding_dimensions: int) -> Scorer:
    """The router as route_bench and train_router train it (routing.router.training)."""

    def score(corpus: Corpus, train_rows: Rows, test_rows: Rows) -> FloatArray:
        model = train(
            corpus.subset(train_rows),
            embedding_dimensions=embedding_dimensions,
            embeddings=corpus.embeddings[train_rows],
        )
        return np.array([model.logit(corpus.outcomes.prompts[row]) for row in test_rows])

    return score


def dense(corpus: Corpus, train_rows: Rows, test_rows: Rows, form: bool) -> tuple[FloatArray, FloatArray]:
    """The unit embedding beside the standardised hand (and question-form) features."""
    blocks = np.hstack([corpus.hand, corpus.form]) if form else corpus.hand
    fit, held = standardised(blocks[train_rows], blocks[test_rows])
    return np.hstack([corpus.embeddings[train_rows], fit]), np.hstack([corpus.embeddings[test_rows], held])


def logistic(dimensions: int, regularisation: float, hand: bool = True, form: bool = False) -> Scorer:
    """A logistic regression on the embedding (and the standardised hand features): P(weak fails)."""
    from sklearn.linear_model import LogisticRegression

    def score(corpus: Corpus, train_rows: Rows, test_rows: Rows) -> FloatArray:
        prefix = corpus.embeddings[:, :dimensions]
        unit = prefix / np.maximum(np.linalg.norm(prefix, axis=1, keepdims=True), 1e-12)
        fit, held = unit[train_rows], unit[test_rows]
        if hand:
            blocks = np.hstack([corpus.hand, corpus.form]) if form else corpus.hand
            hand_fit, hand_held = standardised(blocks[train_rows], blocks[test_rows])
            fit, held = np.hstack([fit, hand_fit]), np.hstack([held, hand_held])
        classifier = LogisticRegression(C=regularisation, max_iter=3000)
        return np.asarray(classifier.fit(fit, ~corpus.outcomes.weak[train_rows]).decision_function(held))

    return score


def ridge_on_gain(alpha: float, form: bool = True) -> Scorer:
    """A linear estimate of the strong model's expected gain, strong correct - weak correct
    (-1, 0 or 1): the quantity the share at a quality target ranks by, where "weak
    fails" also counts the prompts both models fail."""
    from sklearn.linear_model import Ridge

    def score(corpus: Corpus, train_rows: Rows, test_rows: Rows) -> FloatArray:
        fit, held = dense(corpus, train_rows, test_rows, form)
        return np.asarray(Ridge(alpha=alpha).fit(fit, corpus.gain[train_rows]).predict(held))

    return score


def two_logistics(regularisation: float) -> Scorer:
    """P(weak fails) - P(strong fails), each a logistic regression: the expected gain."""
    from sklearn.linear_model import LogisticRegression

    def score(corpus: Corpus, train_rows: Rows, test_rows: Rows) -> FloatArray:
        fit, held = dense(corpus, train_rows, test_rows, form=True)
        outcomes = corpus.outcomes
        probabilities = [
            LogisticRegression(C=regularisation, max_iter=3000)
            .fit(fit, ~correct[train_rows])
            .predict_proba(held)
            for correct in (outcomes.weak, outcomes.strong)
        ]
        return np.asarray(probabilities[0][:, 1] - probabilities[1][:, 1])

    return score


def tfidf_ridge_on_gain(alpha: float) -> Scorer:
    """The shipped pipeline's blocks (TF-IDF latent factors, hand features, embedding)
    plus the question-form features, with the ridge on the expected gain."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge

    def score(corpus: Corpus, train_rows: Rows, test_rows: Rows) -> FloatArray:
        prompts = corpus.outcomes.prompts
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=MAX_TERMS)
        fit_terms = vectorizer.fit_transform([prompts[row] for row in train_rows])
        held_terms = vectorizer.transform([prompts[row] for row in test_rows])
        svd = TruncatedSVD(CLASSIFIER_DIMENSIONS, random_state=0).fit(fit_terms)
        blocks = np.hstack([corpus.hand, corpus.form])
        fit, held = standardised(
            np.hstack([blocks[train_rows], svd.transform(fit_terms)]),
            np.hstack([blocks[test_rows], svd.transform(held_terms)]),
        )
        fit, held = (
            np.hstack([fit, corpus.embeddings[train_rows]]),
            np.hstack([held, corpus.embeddings[test_rows]]),
        )
        return np.asarray(Ridge(alpha=alpha).fit(fit, corpus.gain[train_rows]).predict(held))

    return score


def ensemble(*members: tuple[Scorer, float]) -> Scorer:
    """The members' scores, each standardised over the test prompts, weighted and summed."""

    def score(corpus: Corpus, train_rows: Rows, test_rows: Rows) -> FloatArray:
        total = np.zeros(len(test_rows))
        for scorer, weight in members:
            scores = scorer(corpus, train_rows, test_rows)
            total += weight * (scores - scores.mean()) / max(float(scores.std()), 1e-12)
        return total

    return score


def matrix_factorisation(regularisation: float) -> Scorer:
    """RouteLLM's MF router reduced to two models: its score difference is bilinear in
    the model vectors and linear in the projected embedding, i.e. a logistic regression
    on the embedding trained on the decisive battles (ties dropped) for P(strong wins)."""
    from sklearn.linear_model import LogisticRegression

    def score(corpus: Corpus, train_rows: Rows, test_rows: Rows) -> FloatArray:
        weak, strong = corpus.outcomes.weak[train_rows], corpus.outcomes.strong[train_rows]
        decisive = weak != strong
        classifier = LogisticRegression(C=regularisation, max_iter=3000)
        classifier.fit(corpus.embeddings[train_rows][decisive], strong[decisive])
        return np.asarray(classifier.decision_function(corpus.embeddings[test_rows]))

    return score


def nearest_neighbours(k: int, gain: bool = False) -> Scorer:
    """The weak model's failure rate (or the strong model's mean gain) over the k most
    similar training prompts."""

    def score(corpus: Corpus, train_rows: Rows, test_rows: Rows) -> FloatArray:
        similarity = corpus.embeddings[test_rows] @ corpus.embeddings[train_rows].T
        labels = corpus.gain if gain else (~corpus.outcomes.weak).astype(np.float64)
        nearest = np.argpartition(-similarity, k, axis=1)[:, :k]
        return np.asarray(labels[train_rows][nearest].mean(axis=1))

    return score


def similarity_weighted() -> Scorer:
    """RouteLLM's SW ranking for two models: every training battle weighted by
    10 * 10^(similarity / the best similarity), the strong model's weighted win share
    among decisive battles (the two-player Bradley-Terry fit's ordering)."""

    def score(corpus: Corpus, train_rows: Rows, test_rows: Rows) -> FloatArray:
        similarity = corpus.embeddings[test_rows] @ corpus.embeddings[train_rows].T
        weights = 10 * 10 ** (similarity / similarity.max(axis=1, keepdims=True))
        weak, strong = corpus.outcomes.weak[train_rows], corpus.outcomes.strong[train_rows]
        wins, decisive = (strong & ~weak).astype(np.float64), (strong != weak).astype(np.float64)
        return np.asarray((weights @ wins) / np.maximum(weights @ decisive, 1e-12))

    return score


CANDIDATES: dict[str, Scorer] = {
    "tfidf+hand (before)": trained(0),
    "tfidf+hand+embedding": trained(256),
    "logistic: embedding+hand": logistic(256, 1.0),
    "logistic: embedding128+hand": logistic(128, 1.0),
    "logistic: embedding only": logistic(256, 1.0, hand=False),
    "logistic: embedding+hand+form": logistic(256, 1.0, form=True),
    "ridge on gain: emb+hand": ridge_on_gain(100.0, form=False),
    "ridge on gain: emb+hand+form": ridge_on_gain(100.0),
    "ridge on gain: +tfidf": tfidf_ridge_on_gain(100.0),
    "two logistics: emb+hand+form": two_logistics(1.0),
    "shipped+ridge on gain (1:1)": ensemble((trained(256), 1.0), (ridge_on_gain(100.0), 1.0)),
    "ridge+kNN on gain (2:1)": ensemble(
        (ridge_on_gain(100.0), 2.0), (nearest_neighbours(100, gain=True), 1.0)
    ),
    "MF (RouteLLM, 2 models)": matrix_factorisation(1.0),
    "kNN k=50": nearest_neighbours(50),
    "kNN k=200": nearest_neighbours(200),
    "SW ranking (RouteLLM)": similarity_weighted(),
}
SHIPPED = "tfidf+hand+embedding"


def figures(corpus: Corpus, scores: FloatArray, rows: Rows, target: float) -> dict[str, float]:
    weak, strong = corpus.outcomes.weak[rows], corpus.outcomes.strong[rows]
    oracle = (strong & ~weak).astype(np.float64) - (weak & ~strong).astype(np.float64)
    metrics = curve_metrics(scores, weak, strong, target)
    sources = corpus.sources[rows]
    by_subject = np.zeros(len(rows))
    for source in np.unique(sources):
        members = sources == source
        by_subject[members] = oracle[members].mean()
    return {
        "share": metrics["strong_share_at_target"],
        "random": random_share(weak, strong, target),
        "oracle": curve_metrics(oracle, weak, strong, target)["strong_share_at_target"],
        # Knowing only each held-out subject's mean gain, nothing within a subject.
        "subject_oracle": curve_metrics(by_subject, weak, strong, target)["strong_share_at_target"],
        "apgr": metrics["apgr"],
    }


FIGURES = ("share", "random", "oracle", "subject_oracle", "apgr")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "p5": round(float(np.percentile(values, 5)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
    }


def run(data: Path, folds: int, repetitions: int, target: float) -> dict[str, Any]:
    corpus = Corpus(data)
    subjects = sorted({source for source in corpus.sources if source.startswith("mmlu_")})
    mmlu = corpus.rows(set(subjects))
    held_out_sets = subject_folds(subjects, folds, repetitions)
    tasks = {
        "gsm8k": (mmlu, corpus.rows({"gsm8k_responses"})),
        "mt_bench": (np.concatenate([mmlu, corpus.rows({"gsm8k_responses"})]), corpus.rows({"mt_bench"})),
    }
    results: dict[str, Any] = {}
    for name, scorer in CANDIDATES.items():
        started = time.perf_counter()
        per_fold = []
        for held in held_out_sets:
            test_rows = corpus.rows(set(held))
            train_rows = np.setdiff1d(mmlu, test_rows)
            per_fold.append(figures(corpus, scorer(corpus, train_rows, test_rows), test_rows, target))
        row: dict[str, Any] = {
            "folds": len(per_fold),
            **{key: summary([fold[key] for fold in per_fold]) for key in FIGURES},
            "per_fold_share": [round(fold["share"], 4) for fold in per_fold],
        }
        for task, (train_rows, test_rows) in tasks.items():
            task_figures = figures(corpus, scorer(corpus, train_rows, test_rows), test_rows, target)
            row[task] = {key: round(value, 4) for key, value in task_figures.items()}
        row["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = row
        print_row(name, row)
    first = corpus.rows(set(held_out_sets[0]))
    fold_rows = np.setdiff1d(mmlu, first)
    model = train(corpus.subset(fold_rows), embeddings=corpus.embeddings[fold_rows])
    latency = evaluate(model, corpus.subset(fold_rows), corpus.subset(first), target)
    gsm8k = corpus.subset(tasks["gsm8k"][1])
    from_mmlu = train(corpus.subset(mmlu), embeddings=corpus.embeddings[mmlu])
    replay = {
        "static": online_replay(from_mmlu, gsm8k, target, learn=False),
        "learning": online_replay(from_mmlu, gsm8k, target, learn=True),
    }
    return {
        "benchmark": "routing",
        "protocol": {"folds": folds, "repetitions": repetitions, "held_out_per_fold": len(held_out_sets[0])},
        "target": target,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "candidates": results,
        "shipped": SHIPPED,
        "shipped_decision_ms": {"p50": latency["decision_p50_ms"], "p99": latency["decision_p99_ms"]},
        "shipped_gsm8k_online_replay": replay,
    }


HEADER = (
    f"{'candidate':<30} {'share median [90%]':>22} {'random':>7} {'oracle':>7} {'subj.':>6} {'APGR':>6}"
    f" {'GSM8K':>6} {'(rnd)':>6} {'MT-B':>6} {'(rnd)':>6} {'s':>6}"
)


def print_row(name: str, row: dict[str, Any]) -> None:
    share = row["share"]
    print(
        f"{name:<30} {share['median']:>7.3f} [{share['p5']:.3f}-{share['p95']:.3f}]"
        f" {row['random']['median']:>7.3f} {row['oracle']['median']:>7.3f}"
        f" {row['subject_oracle']['median']:>6.3f} {row['apgr']['median']:>6.3f}"
        f" {row['gsm8k']['share']:>6.3f} {row['gsm8k']['random']:>6.3f}"
        f" {row['mt_bench']['share']:>6.3f} {row['mt_bench']['random']:>6.3f} {row['seconds']:>6.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=OUTCOME_DATA)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="One repetition (4 folds).")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args()
    print(HEADER)
    result = run(args.data, args.folds, 1 if args.quick else args.repetitions, args.target)
    decision = result["shipped_decision_ms"]
    print(f"shipped: {result['shipped']}, decision p50 {decision['p50']} ms, p99 {decision['p99']} ms")
    for mode, halves in result["shipped_gsm8k_online_replay"].items():
        print(
            f"GSM8K replayed as a new tenant's traffic ({mode}): strong share / quality "
            + ", ".join(f"{half} {v['strong_share']:.2f} / {v['quality']:.3f}" for half, v in halves.items())
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
