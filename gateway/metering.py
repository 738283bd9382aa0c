"""Limits, budgets and usage around one /v1 request.

Before the provider is called, `admit` checks the key's and the tenant's rate
limits and reserves the request's largest possible cost against the budgets,
in one atomic Redis step (billing/limits). When the request ends, however it
ends, `settle` reconciles the reservation with the actual usage and appends
one usage event to the durable queue the ledger is filled from
(billing/usage.py). Nothing here writes to PostgreSQL.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from decimal import Decimal

from billing.limits import Limiter, LimiterUnavailableError, Reservation, current_period, limits_for
from gateway.errors import GatewayError
from gateway.orchestrator import Outcome
from routing.policy import RoutePlan
from tenants.models import ApiKey

logger = logging.getLogger(__name__)
MICROS = Decimal(1_000_000)

DENIALS = {
    "key_requests": "This API key's requests-per-minute limit",
    "key_tokens": "This API key's tokens-per-minute limit",
    "tenant_requests": "Your organization's requests-per-minute limit",
    "tenant_tokens": "Your organization's tokens-per-minute limit",
    "tenant_token_budget": "Your organization's monthly token budget",
    "tenant_spend_budget": "Your organization's monthly spend budget",
    "key_token_budget": "This API key's monthly token budget",
    "key_spend_budget": "This API key's monthly spend budget",
    "tenant_request_budget": "Your organization's included requests for this billing period",
}


def usd_micros(amount: Decimal) -> int:
    return math.ceil(amount * MICROS)


@dataclass
class Meter:
    limiter: Limiter
    api_key: ApiKey
    reservation: Reservation | None = None
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False

    async def admit(self, plan: RoutePlan, prompt_tokens: int, max_output_tokens: int) -> None:
        """Reserve the request's most expensive outcome along its plan, or raise 429/503."""
        estimated_usd = max(model.cost_usd(prompt_tokens, max_output_tokens) for model in plan.chain)
        try:
            admission = await self.limiter.admit(
                tenant_id=self.api_key.tenant_id,
                key_id=self.api_key.pk,
                limits=limits_for(self.api_key, self.api_key.tenant.plan),
                estimated_tokens=prompt_tokens + max_output_tokens,
                estimated_usd_micros=usd_micros(estimated_usd),
                period=current_period(),
            )
        except LimiterUnavailableError as error:
            raise GatewayError(
                503,
                "Limits cannot be checked right now; nothing was charged. Try again shortly.",
                "service_unavailable_error",
                "limits_unavailable",
                retry_after=error.retry_after_seconds,
            ) from None
        self.headers = dict(admission.headers)
        if not admission.allowed:
            reason = admission.reason or "rate_limited"
            budget = reason.endswith("budget")
            raise GatewayError(
                429,
                f"{DENIALS.get(reason, 'A limit')} has been reached.",
                "insufficient_quota" if budget else "rate_limit_error",
                reason,
                retry_after=admission.retry_after_seconds,
            )
        self.reservation = admission.reservation

    async def settle(self, outcome: Outcome) -> None:
        """Replace the reservation by what the request actually used (once)."""
        if self.settled:
            return
        self.settled = True
        if self.reservation is None:
            return
        usage = outcome.usage
        try:
            await self.limiter.reconcile(
                self.reservation,
                actual_tokens=usage.prompt_tokens + usage.completion_tokens,
                actual_usd_micros=usd_micros(usage.cost_usd),
            )
        except LimiterUnavailableError:
            # The reservation stays counted until the period ends: it errs towards refusing.
            logger.warning("could not reconcile reservation of key %s", self.api_key.pk)
