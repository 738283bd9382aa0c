"""wordllama's l2_supercat word vectors, loaded once per process from the files its
wheel ships (never from the network; ADR 0017).

Two users share the one instance: the gateway's local embedding model
(gateway/providers/local.py) and the router's prompt embedding
(routing/router/embedding.py). Never `WordLlama.load()`: it looks for the
tokenizer where the wheel does not put it and then downloads it.
"""

from __future__ import annotations

import threading
from importlib.resources import files

from safetensors import safe_open
from tokenizers import Tokenizer
from wordllama.inference import WordLlamaInference  # type: ignore[import-untyped]

_loaded: WordLlamaInference | None = None
_loading = threading.Lock()


def l2_supercat() -> WordLlamaInference:
    """The process's one instance, loaded on first use (about 16 MB)."""
    global _loaded
    if _loaded is None:
        with _loading:
            if _loaded is None:
                _loaded = load()
    return _loaded


def load() -> WordLlamaInference:
    root = files("wordllama")
    tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
    weights = str(root / "weights" / "l2_supercat_256.safetensors")
    with safe_open(weights, framework="np", device="cpu") as tensors:
        embedding = tensors.get_tensor("embedding.weight")
    return WordLlamaInference(embedding, tokenizer)
