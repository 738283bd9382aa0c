"""Resilience primitives around every provider call: a circuit breaker shared
through Redis, retries with backoff, bulkheads (per process and across processes) and deadlines."""

from gateway.resilience.breaker import (
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    Permit,
)
from gateway.resilience.bulkhead import Bulkhead, BulkheadFullError
from gateway.resilience.deadline import Deadline
from gateway.resilience.retry import AttemptBudget, RetryPolicy, parse_retry_after, retry_delay
from gateway.resilience.shared_bulkhead import SharedBulkhead

__all__ = [
    "AttemptBudget",
    "BreakerPolicy",
    "BreakerState",
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitOpenError",
    "Deadline",
    "Permit",
    "RetryPolicy",
    "SharedBulkhead",
    "parse_retry_after",
    "retry_delay",
]
