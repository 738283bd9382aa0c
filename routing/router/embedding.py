"""The prompt's sentence embedding, as the router sees it: wordllama's static
token vectors (the gateway's local embedding model, ADR 0017) averaged over the
prompt's tokens and normalised, truncated to the first `dimensions`
(Matryoshka-trained, so a prefix is an embedding too).

The process's one loaded instance is shared with the gateway's /v1/embeddings
(aiaas/wordllama.py): weights from the wheel, never the network.
Tokenising costs about 0.3 us per character, so the router embeds at most the
head and the tail of a long prompt: the decision stays well under a millisecond.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from aiaas.wordllama import l2_supercat

EMBEDDING_HEAD_CHARACTERS = 400
EMBEDDING_TAIL_CHARACTERS = 200


def clipped(text: str) -> str:
    """The part of the prompt that is embedded: all of it, or its head and tail."""
    if len(text) <= EMBEDDING_HEAD_CHARACTERS + EMBEDDING_TAIL_CHARACTERS:
        return text
    return f"{text[:EMBEDDING_HEAD_CHARACTERS]}\n{text[-EMBEDDING_TAIL_CHARACTERS:]}"


def embed(text: str, dimensions: int) -> npt.NDArray[np.float64]:
    """A unit vector of `dimensions` floats (zeros for a prompt without tokens)."""
    model = l2_supercat()
    ids = model.tokenizer.encode(clipped(text), add_special_tokens=False).ids
    if not ids:
        return np.zeros(dimensions)
    vector: npt.NDArray[np.float64] = model.embedding[ids, :dimensions].mean(axis=0, dtype=np.float64)
    norm = float(np.sqrt(vector @ vector))
    return vector / norm if norm else vector


def embed_many(texts: list[str], dimensions: int) -> npt.NDArray[np.float64]:
    return np.array([embed(text, dimensions) for text in texts]).reshape(len(texts), dimensions)
