"""The router's classifier at serving time: P(the cheap tier fails) for a prompt.

Trained with scikit-learn (routing/router/training.py) and exported to a small
.npz file that needs only numpy to serve: the whole pipeline (TF-IDF, the
latent semantic projection, feature scaling and the logistic regression) is
linear in the TF-IDF vector, so it folds into one weight per term plus weights
for the hand-made features and for the prompt's sentence embedding (wordllama,
routing/router/embedding.py; none in artifacts trained before it). Isotonic
regression maps the score to a calibrated probability. The latent projection
is also kept (small, float16) to find a prompt's cluster of similar training
prompts, the bucket a tenant's own failure rates are kept in (policy.py), and
the prompt's novelty (distance to the nearest cluster).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from routing.router.embedding import embed
from routing.router.features import analyse

FloatArray = npt.NDArray[np.float64]
ARTIFACTS = Path(__file__).parent
GLOBAL_MODEL_PATH = ARTIFACTS / "global_router.npz"


@dataclass(frozen=True, slots=True)
class Prediction:
    failure: float  # calibrated P(cheap tier fails)
    cluster: int  # nearest cluster of training prompts
    novelty: float  # 1 - cosine similarity to that cluster's centre, 0..2
    hand: tuple[float, ...] = ()  # the prompt's HAND_FEATURES, as the score used them


@dataclass(frozen=True)
class RouterModel:
    vocabulary: dict[str, int]
    idf: FloatArray
    term_weights: FloatArray
    hand_weights: FloatArray
    embedding_weights: FloatArray  # (embedding dimensions,): empty when the model uses none
    bias: float
    projection: FloatArray  # (dimensions, terms)
    centroids: FloatArray  # (clusters, dimensions), unit rows
    calibration_x: FloatArray
    calibration_y: FloatArray
    # Quality target -> threshold on P(fail) that reached it on the training data.
    thresholds: dict[str, float]
    meta: dict[str, Any]

    def tfidf(self, prompt_terms: list[str]) -> tuple[npt.NDArray[np.intp], FloatArray]:
        """The prompt's L2-normalised, sublinear TF-IDF vector as (term indexes, values)."""
        vocabulary = self.vocabulary
        counts = Counter(index for index in map(vocabulary.get, prompt_terms) if index is not None)
        if not counts:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        indexes = np.fromiter(counts, dtype=np.intp, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self.idf[
            indexes
        ]
        return indexes, values / np.sqrt(values @ values)

    def logit(self, text: str) -> float:
        return self.scored(text)[0]

    def scored(self, text: str) -> tuple[float, npt.NDArray[np.intp], FloatArray, list[float]]:
        """The logit, the TF-IDF vector it read (indexes, values) and the hand features."""
        prompt_terms, hand = analyse(text)
        indexes, values = self.tfidf(prompt_terms)
        score = self.bias + float(values @ self.term_weights[indexes])
        score += float(np.asarray(hand) @ self.hand_weights)
        if len(self.embedding_weights):
            score += float(embed(text, len(self.embedding_weights)) @ self.embedding_weights)
        return score, indexes, values, hand

    def calibrate(self, logit: float) -> float:
        return float(np.interp(logit, self.calibration_x, self.calibration_y))

    def predict(self, text: str) -> Prediction:
        logit, indexes, values, hand = self.scored(text)
        latent = self.projection[:, indexes] @ values
        norm = math.sqrt(float(latent @ latent))
        similarity = self.centroids @ (latent / norm) if norm else np.zeros(len(self.centroids))
        cluster = int(np.argmax(similarity))
        return Prediction(
            failure=self.calibrate(logit),
            cluster=cluster,
            novelty=1.0 - float(similarity[cluster]),
            hand=tuple(hand),
        )

    def threshold(self, target: float) -> float:
        """The P(fail) above which a request goes to the strong tier to reach `target`
        of the strong tier's quality (training data; the nearest lower tabulated target
        is never used: the next higher one is, so the target is met, not missed)."""
        keys = sorted(float(key) for key in self.thresholds)
        for key in keys:
            if key >= target - 1e-9:
                return self.thresholds[f"{key:.2f}"]
        return self.thresholds[f"{keys[-1]:.2f}"]

    @property
    def top_failure(self) -> float:
        """How often the strong model of the training data failed: the prior of the top tier."""
        return 1.0 - float(self.meta["strong_accuracy"])

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "router"))

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            vocabulary=np.array(sorted(self.vocabulary, key=self.vocabulary.__getitem__)),
            idf=self.idf.astype(np.float32),
            term_weights=self.term_weights.astype(np.float32),
            hand_weights=self.hand_weights,
            embedding_weights=self.embedding_weights,
            bias=np.array([self.bias]),
            projection=self.projection.astype(np.float16),
            centroids=self.centroids.astype(np.float32),
            calibration_x=self.calibration_x,
            calibration_y=self.calibration_y,
            thresholds=np.array(json.dumps(self.thresholds)),
            meta=np.array(json.dumps(self.meta)),
        )

    @classmethod
    def load(cls, path: Path) -> RouterModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                vocabulary={str(term): index for index, term in enumerate(data["vocabulary"])},
                idf=data["idf"].astype(np.float64),
                term_weights=data["term_weights"].astype(np.float64),
                hand_weights=data["hand_weights"].astype(np.float64),
                embedding_weights=(
                    data["embedding_weights"].astype(np.float64)
                    if "embedding_weights" in data
                    else np.zeros(0)
                ),
                bias=float(data["bias"][0]),
                projection=data["projection"].astype(np.float64),
                centroids=data["centroids"].astype(np.float64),
                calibration_x=data["calibration_x"].astype(np.float64),
                calibration_y=data["calibration_y"].astype(np.float64),
                thresholds=json.loads(str(data["thresholds"])),
                meta=json.loads(str(data["meta"])),
            )


@cache
def load_artifact(name: str) -> RouterModel:
    """A classifier file of routing/router/ (RouterVersion.artifact), loaded once per process.
    The shipped global_router.npz is trained on every file in routing/data by
    `manage.py train_router`: the prior a tenant without outcomes of its own gets."""
    return RouterModel.load(ARTIFACTS / name)
