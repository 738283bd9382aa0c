"""Rate limits and budgets for /v1 requests: `limits_for` resolves what applies
to a key, `Limiter` admits and reconciles requests against it in Redis."""

from billing.limits.limiter import (
    Admission,
    BudgetUsage,
    Hold,
    Limiter,
    LimiterUnavailableError,
    Reservation,
    format_duration,
)
from billing.limits.periods import billing_period, billing_period_bounds, current_period, period_end
from billing.limits.resolution import DEFAULT_LIMITS, Limits, limits_for

__all__ = [
    "DEFAULT_LIMITS",
    "Admission",
    "BudgetUsage",
    "Hold",
    "Limiter",
    "LimiterUnavailableError",
    "Limits",
    "Reservation",
    "billing_period",
    "billing_period_bounds",
    "current_period",
    "format_duration",
    "limits_for",
    "period_end",
]
