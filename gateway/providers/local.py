"""Models the gateway runs in its own process (providers of kind `local`): one
embedding model today, wordllama's l2_supercat word vectors (ADR 0017).

A model is loaded once per process, on first use, from the files its wheel
ships (never from the network), and runs on a small pool of threads of its own,
so the event loop never waits on it; the request's deadline is checked between
batches. Answers are shaped as OpenAI's embeddings responses, `usage` counted
by the model's own tokenizer.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from wordllama.inference import WordLlamaInference  # type: ignore[import-untyped]

from aiaas.wordllama import l2_supercat
from gateway.providers.errors import FailureKind, ProviderError
from gateway.resilience import Deadline
from routing.catalog import ModelSpec

WORDLLAMA_L2_SUPERCAT = "wordllama-l2-supercat-256"
# Trained as nested (Matryoshka) embeddings: each of these prefixes is an embedding too.
WORDLLAMA_DIMENSIONS = (64, 128, 256)
# Padded tokens per batch, counted by an upper bound (an input's UTF-8 bytes + 1): at
# most 64 MB of float32 vectors gathered at 256 dimensions, twice that while pooled.
BATCH_TOKENS = 65_536
BATCH_INPUTS = 64

LOCAL_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="local-model")

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Embedded:
    vectors: Vectors  # (inputs, dimensions), unit length
    prompt_tokens: int


class WordLlamaEmbedder:
    """Static word vectors averaged over an input's tokens, then normalised."""

    dimensions = WORDLLAMA_DIMENSIONS

    def __init__(self, model: WordLlamaInference) -> None:
        self.model = model

    def embed(self, texts: list[str], dimensions: int, max_tokens: int, deadline: Deadline) -> Embedded:
        """Raises ProviderError: CONTEXT_LENGTH for an input over `max_tokens`,
        TIMEOUT once the deadline has passed."""
        vectors: Vectors = np.empty((len(texts), dimensions), dtype=np.float32)
        table = self.model.embedding[:, :dimensions]
        tokens = 0
        for start, stop in batches(texts):
            if deadline.expired:
                raise ProviderError(FailureKind.TIMEOUT, "the request's deadline passed")
            encodings = self.model.tokenize(texts[start:stop])
            mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.float32)
            counts = mask.sum(axis=1)
            if counts.max() > max_tokens:
                index = start + int(counts.argmax())
                raise ProviderError(
                    FailureKind.CONTEXT_LENGTH,
                    f"input[{index}] has {int(counts.max())} tokens; the model takes at most {max_tokens}",
                    400,
                )
            ids = np.array([encoding.ids for encoding in encodings], dtype=np.int32)
            pooled = self.model.avg_pool(table[ids], mask)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            vectors[start:stop] = pooled / np.maximum(norms, np.finfo(np.float32).tiny)
            tokens += int(counts.sum())
        return Embedded(vectors, tokens)


def batches(texts: list[str]) -> Iterator[tuple[int, int]]:
    """Consecutive (start, stop) slices whose padded size stays within BATCH_TOKENS."""
    start, longest = 0, 0
    for index, text in enumerate(texts):
        bound = len(text.encode()) + 1
        widest = max(longest, bound)
        if index > start and ((index - start + 1) * widest > BATCH_TOKENS or index - start >= BATCH_INPUTS):
            yield start, index
            start, widest = index, bound
        longest = widest
    yield start, len(texts)


def load_wordllama() -> WordLlamaEmbedder:
    return WordLlamaEmbedder(l2_supercat())


# upstream_model -> how to load it
LOADERS: dict[str, Callable[[], WordLlamaEmbedder]] = {WORDLLAMA_L2_SUPERCAT: load_wordllama}
_loaded: dict[str, WordLlamaEmbedder] = {}
_loading = threading.Lock()


def local_model(name: str) -> WordLlamaEmbedder:
    """The process's one instance of the local model `name`, loaded on first use."""
    model = _loaded.get(name)
    if model is None:
        with _loading:
            model = _loaded.get(name)
            if model is None:
                model = _loaded[name] = LOADERS[name]()
    return model


@dataclass(frozen=True)
class LocalEmbeddingsRequest:
    inputs: list[str]
    dimensions: int
    encoding_format: str


def parse_request(model: ModelSpec, body: dict[str, Any]) -> LocalEmbeddingsRequest:
    """The body the gateway validated, checked against what the local model can do."""
    if model.upstream_model not in LOADERS:
        raise ProviderError(FailureKind.SERVER_ERROR, f"no local model named `{model.upstream_model}`")
    supported = WordLlamaEmbedder.dimensions
    dimensions = body.get("dimensions") or supported[-1]
    if dimensions not in supported:
        choices = ", ".join(str(size) for size in supported)
        raise ProviderError(
            FailureKind.CLIENT_ERROR, f"`dimensions` must be one of {choices} for {model.model_id}.", 400
        )
    # float or base64: gateway/validation.py refused any other.
    encoding_format = body.get("encoding_format") or "float"
    value = body["input"]
    inputs = [value] if isinstance(value, str) else list(value)
    return LocalEmbeddingsRequest(inputs, dimensions, encoding_format)


async def embeddings(model: ModelSpec, body: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
    """An OpenAI embeddings response from the local model, or ProviderError."""
    request = parse_request(model, body)

    def run() -> Embedded:
        embedder = local_model(model.upstream_model)
        return embedder.embed(request.inputs, request.dimensions, model.context_window, deadline)

    work = asyncio.get_running_loop().run_in_executor(LOCAL_EXECUTOR, run)
    try:
        embedded = await asyncio.wait_for(work, timeout=deadline.remaining())
    except TimeoutError:
        raise ProviderError(FailureKind.TIMEOUT, "the request's deadline passed") from None
    return response(model, embedded, request.encoding_format)


def response(model: ModelSpec, embedded: Embedded, encoding_format: str) -> dict[str, Any]:
    encode = encoder(encoding_format)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode(vector)}
            for index, vector in enumerate(embedded.vectors)
        ],
        "model": model.upstream_model,
        "usage": {"prompt_tokens": embedded.prompt_tokens, "total_tokens": embedded.prompt_tokens},
    }


def encoder(encoding_format: str) -> Callable[[Vectors], list[float] | str]:
    """OpenAI's base64 is the little-endian float32 bytes of the vector."""
    if encoding_format == "base64":
        return lambda vector: base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return lambda vector: vector.tolist()
