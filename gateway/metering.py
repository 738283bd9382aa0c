"""Limits, budgets and usage around one /v1 request.

Before the provider is called, `admit` checks the key's and the tenant's rate
limits and reserves the largest possible cost of the request's first attempt
(a true upper bound: prompt bytes and the output limit sent upstream) against
the budgets, in one atomic Redis step (billing/limits); `guard` holds more
before any further attempt that will be billed. When the request ends, however it
ends, `settle` reconciles the reservation with the actual usage and appends
one usage event to the durable queue the ledger is filled from
(billing/usage.py). Nothing here writes to PostgreSQL.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from decimal import Decimal

from billing.limits import (
    Hold,
    Limiter,
    LimiterUnavailableError,
    Limits,
    Reservation,
    current_period,
    limits_for,
)
from gateway.errors import GatewayError
from gateway.orchestrator import Outcome, Usage
from gateway.providers.errors import FailureKind, ProviderError
from gateway.spool import Reconcile
from routing.catalog import ModelSpec
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
    limits: Limits | None = None
    # What later attempts added to the reservation's hold (`guard`), and how many times.
    extended: Hold = field(default_factory=Hold)
    extensions: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False

    async def admit(self, plan: RoutePlan, prompt_tokens_bound: int, max_output_tokens: int) -> None:
        """Reserve the most the request's first attempt may cost along its plan
        (its prompt bound and output limit at the priciest model), or raise 429/503."""
        estimated_usd = max(model.cost_usd(prompt_tokens_bound, max_output_tokens) for model in plan.chain)
        self.limits = limits_for(self.api_key, self.api_key.tenant.plan)
        try:
            admission = await self.limiter.admit(
                tenant_id=self.api_key.tenant_id,
                key_id=self.api_key.pk,
                limits=self.limits,
                estimated_tokens=prompt_tokens_bound + max_output_tokens,
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

    async def guard(self, spent: Usage, model: ModelSpec, prompt_tokens: int, output_tokens: int) -> None:
        """Before an attempt: what the request billed so far plus the most this
        attempt may bill must be held. The admission covers a first attempt;
        an attempt after a billed one (early exit's next tier, a stream
        continued on another model) holds the difference first, or fails with
        ProviderError(BUDGET_EXHAUSTED), so no budget is exceeded."""
        if self.reservation is None or self.limits is None:
            return
        need = Hold(
            spent.prompt_tokens + spent.completion_tokens + prompt_tokens + output_tokens,
            usd_micros(spent.cost_usd + model.cost_usd(prompt_tokens, output_tokens)),
        )
        held = self.held
        more = Hold(max(0, need.tokens - held.tokens), max(0, need.usd_micros - held.usd_micros))
        if more == Hold():
            return
        self.extensions += 1
        try:
            extended = await self.limiter.extend(self.reservation, self.limits, more, self.extensions)
        except LimiterUnavailableError:
            raise ProviderError(
                FailureKind.LIMITS_UNAVAILABLE, "Limits cannot be checked right now. Try again shortly."
            ) from None
        if not extended:
            raise ProviderError(
                FailureKind.BUDGET_EXHAUSTED,
                "Your budget cannot cover another attempt at this request; what it used is billed.",
            )
        self.extended += more

    @property
    def held(self) -> Hold:
        assert self.reservation is not None
        admitted = Hold(self.reservation.estimated_tokens, self.reservation.estimated_usd_micros)
        return admitted + self.extended

    async def settle(self, outcome: Outcome) -> Reconcile | None:
        """Replace the reservation by what the request actually used (once). When
        Redis does not answer, the reconcile is returned for the spool
        (gateway/spool.py), which runs it once Redis is back."""
        if self.settled or self.reservation is None:
            return None
        self.settled = True
        usage = outcome.usage
        reconcile = Reconcile(
            self.reservation,
            actual_tokens=usage.prompt_tokens + usage.completion_tokens,
            actual_usd_micros=usd_micros(usage.cost_usd),
            extended=self.extended,
        )
        try:
            await reconcile.run(self.limiter)
        except LimiterUnavailableError:
            logger.warning("could not reconcile reservation of key %s; spooled", self.api_key.pk)
            return reconcile
        return None
