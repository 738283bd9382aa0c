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

    @property
    def text(self) -> str:
        return str(self.delta.get("content") or "")


@dataclass(frozen=True, slots=True)
class ChatFinished:
    finish_reason: str


@dataclass(frozen=True, slots=True)
class ChatFailed:
    error: ProviderError


ChatEvent = ChatDelta | ChatFinished | ChatFailed
