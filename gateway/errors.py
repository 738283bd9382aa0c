"""Gateway errors in OpenAI's shape, and the one ladder every transport uses to
turn a failure into one (`error_for`)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from gateway.providers.errors import FailureKind, ProviderError

# The longest Retry-After an SDK should sleep through: OpenAI's SDK gives up above
# it, while Anthropic's sleeps for whatever it is told (an exhausted monthly budget
# says weeks), so a longer wait, or a refusal no wait lifts, is sent with
# `x-should-retry: false`, which both SDKs obey.
LONGEST_RETRY_SECONDS = 60


@dataclass
class GatewayError(Exception):
    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None
    # The request's body was not read to its end: the connection cannot serve another.
    closes_connection: bool = False

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def headers(self) -> dict[str, str]:
        headers = {"connection": "close"} if self.closes_connection else {}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after)))
        if self.type == "insufficient_quota" or (self.retry_after or 0) > LONGEST_RETRY_SECONDS:
            headers["x-should-retry"] = "false"
        return headers

    @property
    def error_type(self) -> str:
        """What the usage ledger records about it."""
        return self.code or self.type


def invalid(message: str, param: str | None, code: str = "invalid_value") -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", code, param)


# kind -> (status, type, code)
PROVIDER_FAILURES: dict[FailureKind, tuple[int, str, str]] = {
    FailureKind.RATE_LIMITED: (429, "rate_limit_error", "upstream_rate_limited"),
    FailureKind.TIMEOUT: (504, "timeout_error", "upstream_timeout"),
    FailureKind.CIRCUIT_OPEN: (503, "service_unavailable_error", "upstream_circuit_open"),
    FailureKind.BULKHEAD_FULL: (503, "service_unavailable_error", "upstream_overloaded"),
    FailureKind.SERVER_ERROR: (502, "upstream_error", "upstream_server_error"),
    FailureKind.CONNECTION: (502, "upstream_error", "upstream_connection_error"),
    FailureKind.BAD_RESPONSE: (502, "upstream_error", "upstream_bad_response"),
    FailureKind.STREAM_CUT: (502, "upstream_error", "upstream_stream_cut"),
    FailureKind.UNRESUMABLE: (502, "upstream_error", "upstream_stream_cut"),
    # Early exit rejected an answer and no later model could answer in time.
    FailureKind.INVALID_OUTPUT: (502, "upstream_error", "upstream_invalid_output"),
    FailureKind.CONTEXT_LENGTH: (400, "invalid_request_error", "context_length_exceeded"),
    FailureKind.CLIENT_ERROR: (400, "invalid_request_error", "upstream_rejected_request"),
    FailureKind.BUDGET_EXHAUSTED: (429, "insufficient_quota", "budget_exhausted"),
    FailureKind.LIMITS_UNAVAILABLE: (503, "service_unavailable_error", "limits_unavailable"),
}


def from_provider_error(error: ProviderError) -> GatewayError:
    status, error_type, code = PROVIDER_FAILURES[error.kind]
    retry_after = error.retry_after
    if status in {429, 503} and retry_after is None:
        retry_after = 1.0
    param = "messages" if error.kind is FailureKind.CONTEXT_LENGTH else None
    message = (
        f"The model provider failed: {error.message}"
        if status >= 500 and error.kind is not FailureKind.LIMITS_UNAVAILABLE
        else error.message
    )
    return GatewayError(status, message, error_type, code, param, retry_after)


TIMED_OUT = ProviderError(FailureKind.TIMEOUT, "the request took too long")
NO_OUTPUT = ProviderError(FailureKind.STREAM_CUT, "no output")


def internal_error() -> GatewayError:
    return GatewayError(500, "The gateway failed to handle the request.", "server_error", "internal_error")


def cancelled() -> GatewayError:
    return GatewayError(499, "The client cancelled the request.", "invalid_request_error", "cancelled")


def client_disconnected() -> GatewayError:
    return GatewayError(
        499, "The client closed the connection.", "invalid_request_error", "client_disconnected"
    )


def error_for(failure: BaseException) -> GatewayError:
    """The one error ladder: what a request's failure is to its caller, whichever
    transport carries it (an unexpected exception is an internal error)."""
    if isinstance(failure, GatewayError):
        return failure
    if isinstance(failure, ProviderError):
        return from_provider_error(failure)
    if isinstance(failure, TimeoutError):
        return from_provider_error(TIMED_OUT)
    if isinstance(failure, asyncio.CancelledError):
        return cancelled()
    return internal_error()
