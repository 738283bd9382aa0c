"""Gateway errors in OpenAI's shape, and the mapping from provider failures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gateway.providers.client import ProviderError


@dataclass
class GatewayError(Exception):
    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}


# kind -> (status, type, code)
PROVIDER_FAILURES = {
    "rate_limited": (429, "rate_limit_error", "upstream_rate_limited"),
    "timeout": (504, "timeout_error", "upstream_timeout"),
    "circuit_open": (503, "service_unavailable_error", "upstream_circuit_open"),
    "bulkhead_full": (503, "service_unavailable_error", "upstream_overloaded"),
    "server_error": (502, "upstream_error", "upstream_server_error"),
    "connection": (502, "upstream_error", "upstream_connection_error"),
    "bad_response": (502, "upstream_error", "upstream_bad_response"),
    "stream_cut": (502, "upstream_error", "upstream_stream_cut"),
    "unresumable": (502, "upstream_error", "upstream_stream_cut"),
    # Early exit rejected an answer and no later model could answer in time.
    "invalid_output": (502, "upstream_error", "upstream_invalid_output"),
    "context_length": (400, "invalid_request_error", "context_length_exceeded"),
    "client_error": (400, "invalid_request_error", "upstream_rejected_request"),
}


def from_provider_error(error: ProviderError) -> GatewayError:
    status, error_type, code = PROVIDER_FAILURES[error.kind]
    retry_after = error.retry_after
    if status in {429, 503} and retry_after is None:
        retry_after = 1.0
    param = "messages" if error.kind == "context_length" else None
    message = f"The model provider failed: {error.message}" if status >= 500 else error.message
    return GatewayError(status, message, error_type, code, param, retry_after)
