"""`auto` evaluated at a quality target of the experiment's own: the router serves
the same prompts from a cheaper tier at a low target than at the highest; and the
verdicts on its answers are outcomes it learns from."""

from __future__ import annotations

import uuid

import redis
from django.conf import settings

from billing.models import UsageEvent
from evals.models import CaseResult
from evals.tests.experiments import PARAMS, absent_word, answer_to, create, make_version, results, run
from routing.router.outcomes import decision_key
from tenants.tests.factories import TenantFactory
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


def test_the_router_learns_each_judged_answer_of_auto_once(gateway: str) -> None:
    # A tenant of its own: what the router learns here must not move other tests' routes.
    learner: TenantFixture = committed(lambda: TenantFactory.create(slug=f"learner-{uuid.uuid4().hex[:8]}"))
    # Case n passes unless n is odd: its expected word is then absent from its answer.
    contents = [f"Judge the router's answer {n}." for n in range(4)]
    words = [
        answer_to(c).split()[1] if n % 2 == 0 else absent_word(answer_to(c)) for n, c in enumerate(contents)
    ]
    version_id = make_version(
        learner,
        [{"messages": [{"role": "user", "content": content}]} for content in contents],
        expected=words,
        version_assertions=[{"type": "contains"}],
    )
    routed = run(learner, create(learner, version_id, target={"model": "auto", "params": PARAMS}))
    named = run(learner, create(learner, version_id))

    with redis.Redis.from_url(settings.REDIS_URL, decode_responses=True) as client:
        stored = results(learner, routed.pk)
        ratings = [
            client.hget(decision_key(stored[f"case-{n:03}"].request_ids[0]), "rated") for n in range(4)
        ]
        named_ids = [CaseResult.request_id_for(named.pk, f"case-{n:03}") for n in range(4)]
        assert [client.exists(decision_key(request_id)) for request_id in named_ids] == [0] * 4
    assert ratings == ["1", "0", "1", "0"]
    assert [stored[f"case-{n:03}"].passed for n in range(4)] == [True, False, True, False]
