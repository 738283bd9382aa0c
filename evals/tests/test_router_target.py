"""`auto` evaluated at a quality target of the experiment's own: the router serves
the same prompts from a cheaper tier at a low target than at the highest."""

from __future__ import annotations

from django.conf import settings

from billing.models import UsageEvent
from evals.tests.experiments import PARAMS, create, make_version, run
from testing.database import committed
from testing.tenants import TenantFixture
from testing.usage import drain_usage_events

CASES = 12


def tiers_served(experiment_id: str) -> list[int]:
    committed(lambda: drain_usage_events(settings.USAGE_STREAM))
    rows = UsageEvent.objects.filter(request_id__startswith=f"req_{experiment_id}_").order_by("request_id")
    return committed(lambda: [row.tier or 0 for row in rows])


def test_a_quality_target_of_the_experiment_moves_the_routers_choice(
    serving_tenant: TenantFixture, gateway: str
) -> None:
    prompts = [
        f"Explain, step by step and with proofs, theorem {n} of the calculus of variations."
        for n in range(CASES)
    ]
    version_id = make_version(
        serving_tenant, [{"messages": [{"role": "user", "content": p}]} for p in prompts]
    )
    low = run(
        serving_tenant,
        create(
            serving_tenant, version_id, target={"model": "auto", "quality_target": 0.05, "params": PARAMS}
        ),
    )
    high = run(
        serving_tenant,
        create(serving_tenant, version_id, target={"model": "auto", "quality_target": 1.0, "params": PARAMS}),
    )

    low_tiers, high_tiers = tiers_served(low.pk), tiers_served(high.pk)
    assert low_tiers == [1] * CASES
    assert len(high_tiers) == CASES
    # Exploration may send a close call one tier down; not most of them.
    assert sum(tier >= 2 for tier in high_tiers) >= CASES - 2
