"""Canary router versions: a share of a tenant's traffic, judged by a sequential test.

Each quality observation of the canary (routing/router/outcomes.py) is a
Bernoulli trial. Wald's sequential probability ratio test compares
H0: its failure rate is the control's (p0, the control's observed rate,
Laplace-smoothed) with H1: it is worse by the tenant's max quality drop
(p1 = p0 + drop). After every check the log-likelihood ratio of the canary's
observations so far decides: at or above log((1 - BETA) / ALPHA) the canary is
rolled back, at or below log(BETA / (1 - ALPHA)) it has passed, in between the
test goes on. Unlike a fixed-horizon test looked at repeatedly, its error rates
hold however often it is checked (every few seconds, by Celery beat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from aiaas.redis_clients import sync_client
from routing.models import DEFAULT_ROUTER_VERSION, CanaryState, RouterVersion, TenantRouting
from routing.router import outcomes

ALPHA = 0.05  # P(rolling back a canary that is as good as the control)
BETA = 0.10  # P(keeping a canary that is worse by the max quality drop)
MIN_CONTROL_OBSERVATIONS = 20  # the control's rate must be known before judging against it


@dataclass(frozen=True, slots=True)
class Verdict:
    state: CanaryState
    log_likelihood_ratio: float
    summary: str


def sequential_test(
    control_failures: float, control_observations: float, failures: float, observations: float, drop: float
) -> Verdict:
    if control_observations < MIN_CONTROL_OBSERVATIONS:
        return Verdict(
            CanaryState.RUNNING, 0.0, f"waiting for {MIN_CONTROL_OBSERVATIONS} control observations"
        )
    p0 = (control_failures + 1) / (control_observations + 2)
    p1 = min(0.999, p0 + drop)
    ratio = failures * math.log(p1 / p0) + (observations - failures) * math.log((1 - p1) / (1 - p0))
    rate = (
        f"canary {failures:.0f}/{observations:.0f} failed"
        f" vs control {control_failures:.0f}/{control_observations:.0f}"
    )
    if ratio >= math.log((1 - BETA) / ALPHA):
        return Verdict(CanaryState.ROLLED_BACK, ratio, f"rolled back: {rate} (quality drop over {drop:.2f})")
    if ratio <= math.log(BETA / (1 - ALPHA)):
        return Verdict(CanaryState.PASSED, ratio, f"passed: {rate}")
    return Verdict(CanaryState.RUNNING, ratio, f"running: {rate}")


def start_canary(
    tenant_id: int, canary: RouterVersion, share: Decimal, control: RouterVersion
) -> TenantRouting:
    """Send `share` of the tenant's `auto` traffic to `canary`, its counters reset."""
    routing, _ = TenantRouting.objects.get_or_create(tenant_id=tenant_id)
    reset_canary_counters(tenant_id)
    routing.control, routing.canary, routing.canary_share = control, canary, share
    routing.canary_state, routing.canary_verdict = CanaryState.RUNNING, "running"
    routing.canary_started_at, routing.canary_decided_at = timezone.now(), None
    routing.full_clean()
    routing.save()
    return routing


def reset_canary_counters(tenant_id: int) -> None:
    sync_client("gateway").delete(outcomes.canary_key(tenant_id))


def check_canaries() -> dict[str, int]:
    """Run the sequential test of every running canary; roll back or pass the decided ones."""
    decided = {CanaryState.ROLLED_BACK.value: 0, CanaryState.PASSED.value: 0, CanaryState.RUNNING.value: 0}
    running = TenantRouting.objects.filter(canary_state=CanaryState.RUNNING).select_related(
        "control", "canary"
    )
    client = sync_client("gateway")
    for routing in running:
        if routing.canary is None:
            continue
        counts = outcomes.canary_counts(client, routing.tenant_id)
        control = counts.get(routing.control.name if routing.control else DEFAULT_ROUTER_VERSION, {})
        canary = counts.get(routing.canary.name, {})
        verdict = sequential_test(
            control.get("f", 0.0),
            control.get("n", 0.0),
            canary.get("f", 0.0),
            canary.get("n", 0.0),
            float(routing.canary_max_quality_drop),
        )
        decided[verdict.state.value] += 1
        with transaction.atomic():
            current = TenantRouting.objects.select_for_update().get(pk=routing.pk)
            if current.canary_state != CanaryState.RUNNING:
                continue  # staff changed it meanwhile
            current.canary_verdict = verdict.summary[:300]
            if verdict.state != CanaryState.RUNNING:
                current.canary_state, current.canary_decided_at = verdict.state, timezone.now()
            current.save(update_fields=["canary_verdict", "canary_state", "canary_decided_at", "updated_at"])
    return decided
