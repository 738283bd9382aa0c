"""What a streamed chat completion yields, one class per kind (a tagged union):
text or tool-call deltas from the model that produced them, then exactly one
of a finish or a failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.providers.errors import ProviderError
from routing.catalog import ModelSpec


@dataclass(frozen=True, slots=True)
class ChatDelta:
    model: ModelSpec
    # OpenAI's `delta` without `role` and empty fields: `content`, `tool_calls`, ...
    delta: dict[str, Any]
    index: int = 0  # the choice it belongs to (`n` > 1)
    logprobs: dict[str, Any] | None = None  # the choice's `logprobs` for this delta

    @property
    def text(self) -> str:
        return str(self.delta.get("content") or "")


@dataclass(frozen=True, slots=True)
class ChatFinished:
    finish_reason: str  # the first choice's
    finish_reasons: tuple[tuple[int, str], ...] = ()  # (index, finish_reason) of every choice


@dataclass(frozen=True, slots=True)
class ChatFailed:
    error: ProviderError


ChatEvent = ChatDelta | ChatFinished | ChatFailed
