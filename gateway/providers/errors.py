"""How a provider call failed, as a kind each layer decides on: retry, fall back,
count against the circuit breaker, and the error the client is shown."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    BAD_RESPONSE = "bad_response"
    CONTEXT_LENGTH = "context_length"
    CLIENT_ERROR = "client_error"
    CIRCUIT_OPEN = "circuit_open"
    BULKHEAD_FULL = "bulkhead_full"
    STREAM_CUT = "stream_cut"
    # A stream cut after output (tool-call deltas) that no other model can continue.
    UNRESUMABLE = "unresumable"
    # Early exit rejected the answer: the next tier is asked.
    INVALID_OUTPUT = "invalid_output"
    # Another attempt would be billed, and the budgets cannot hold it (or cannot be checked).
    BUDGET_EXHAUSTED = "budget_exhausted"
    LIMITS_UNAVAILABLE = "limits_unavailable"


RETRYABLE = frozenset(
    {
        FailureKind.RATE_LIMITED,
        FailureKind.SERVER_ERROR,
        FailureKind.TIMEOUT,
        FailureKind.CONNECTION,
        FailureKind.BAD_RESPONSE,
        FailureKind.STREAM_CUT,
    }
)
NOT_FALLBACKABLE = frozenset(
    {
        FailureKind.CLIENT_ERROR,
        FailureKind.UNRESUMABLE,
        FailureKind.BUDGET_EXHAUSTED,
        FailureKind.LIMITS_UNAVAILABLE,
    }
)
NOT_THE_PROVIDERS_FAULT = frozenset(
    {
        FailureKind.CLIENT_ERROR,
        FailureKind.CONTEXT_LENGTH,
        FailureKind.CIRCUIT_OPEN,
        FailureKind.BULKHEAD_FULL,
        FailureKind.INVALID_OUTPUT,
        FailureKind.BUDGET_EXHAUSTED,
        FailureKind.LIMITS_UNAVAILABLE,
    }
)


@dataclass
class ProviderError(Exception):
    """A provider call failed, and how (`kind`)."""

    kind: FailureKind
    message: str
    status: int | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        self.kind = FailureKind(self.kind)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    @property
    def retryable(self) -> bool:
        """Worth another attempt on the same model."""
        return self.kind in RETRYABLE

    @property
    def fallbackable(self) -> bool:
        """Worth trying the next model; a client error would fail there too."""
        return self.kind not in NOT_FALLBACKABLE

    @property
    def counts_against_provider(self) -> bool:
        """Whether the circuit breaker should count it: the provider's fault, not the request's."""
        return self.kind not in NOT_THE_PROVIDERS_FAULT
