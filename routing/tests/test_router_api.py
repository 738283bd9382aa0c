"""/api/v1/routing: the router's settings and report, per tenant."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal

import pytest
import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from routing.models import TenantRouting
from routing.router.cache import RouterConfigCache
from routing.router.config import Tally, TenantRouterConfig
from routing.router.outcomes import RequestOutcome, outcomes_key, parse_outcomes, record, tally_mapping
from routing.router.policy import Decision
from routing.router.services import snapshot_outcomes
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture


@pytest.fixture(autouse=True)
def _no_router_figures(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    """Redis outlives a test's transaction: start each test without the tenants' figures."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        for fixture in (tenant, other_tenant):
            for key in client.scan_iter(f"router:*:{fixture.tenant.pk}*"):
                client.delete(key)


def decision(tier: int, *, canary: bool = False) -> Decision:
    return Decision(
        version="global-v1",
        is_canary=canary,
        bucket="4:text",
        tier=tier,
        tiers=(1, 2, 3),
        predicted_failure=0.2,
        prior=0.2,
        novelty=0.3,
        cheap_failure=0.2,
        score=0.2,
        threshold=0.25,
        adapted=False,
        expected_cost_usd=0.001,
        explored=False,
        early_exit=tier == 1,
        decision_seconds=0.0002,
    )


def record_requests(tenant_id: int, *outcomes: RequestOutcome) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        for outcome in outcomes:
            await record(client, outcome)
        await client.aclose()

    asyncio.run(run())


def outcome(tenant_id: int, request_id: str, tier: int, served: int, failed: bool | None) -> RequestOutcome:
    return RequestOutcome(
        tenant_id=tenant_id,
        request_id=request_id,
        decision=decision(tier),
        served_tier=served,
        first_tier_failed=failed,
        cost_usd=Decimal("0.001"),
        top_tier_cost_usd=Decimal("0.004"),
        expected_cost_usd=Decimal("0.0012"),
        latency_ms=40,
    )


def test_the_report_sums_the_tenants_routed_requests_only(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    tenant_id = tenant.tenant.pk
    record_requests(
        tenant_id,
        outcome(tenant_id, f"req_{tenant_id}_a", tier=1, served=1, failed=False),
        outcome(tenant_id, f"req_{tenant_id}_b", tier=1, served=2, failed=True),
        outcome(tenant_id, f"req_{tenant_id}_c", tier=3, served=3, failed=None),
    )

    response = tenant.api_client().get("/api/v1/routing/report?days=2")
    assert response.status_code == 200, response.content
    report = response.json()
    totals = report["totals"]
    assert totals["routed_requests"] == 3
    assert totals["tier_mix"] == {"1": 0.6667, "3": 0.3333}
    assert totals["escalation_rate"] == 0.3333
    assert (totals["judged_requests"], totals["misroute_rate"], totals["predicted_failure_rate"]) == (
        2,
        0.5,
        0.2,
    )
    assert (totals["cost_usd"], totals["top_tier_cost_usd"], totals["saved_usd"]) == (
        "0.003000",
        "0.012000",
        "0.009000",
    )
    assert totals["saved_share"] == 0.75
    assert totals["mean_novelty"] == 0.3
    assert totals["decision_latency_histogram"]["le_250us"] == 3
    assert len(report["daily"]) == 2
    assert report["daily"][-1]["routed_requests"] == 3

    outsider = other_tenant.api_client().get("/api/v1/routing/report").json()
    assert outsider["totals"]["routed_requests"] == 0


def test_the_report_refuses_a_bad_window(tenant: TenantFixture) -> None:
    response = tenant.api_client().get("/api/v1/routing/report?days=0")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "days"


def test_settings_are_validated_and_scoped_to_the_tenant(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    client = tenant.api_client()
    assert client.get("/api/v1/routing/settings").json()["quality_target"] == "0.95"

    changed = client.patch(
        "/api/v1/routing/settings", {"quality_target": "0.90", "exploration_rate": "0"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["quality_target"], changed.json()["exploration_rate"]) == ("0.90", "0.00")
    assert TenantRouting.objects.get(tenant=tenant.tenant).quality_target == Decimal("0.90")
    assert other_tenant.api_client().get("/api/v1/routing/settings").json()["quality_target"] == "0.95"

    for body, field in (
        ({"quality_target": "0.5"}, "quality_target"),
        ({"exploration_rate": "0.2"}, "exploration_rate"),
    ):
        refused = client.patch("/api/v1/routing/settings", body, format="json")
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == field
    assert TenantRouting.objects.get(tenant=tenant.tenant).quality_target == Decimal("0.90")

    reader = create_api_key(tenant.tenant, name="reader", scopes=[ApiKeyScope.READ]).secret
    assert (
        tenant.api_client(reader)
        .patch("/api/v1/routing/settings", {"quality_target": "1"}, format="json")
        .status_code
        == 403
    )


def test_the_dashboard_routing_page_shows_the_tenants_figures(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    tenant_id = tenant.tenant.pk
    record_requests(
        tenant_id,
        outcome(tenant_id, f"req_{tenant_id}_page_a", tier=1, served=1, failed=False),
        outcome(tenant_id, f"req_{tenant_id}_page_b", tier=1, served=2, failed=True),
    )
    content = tenant.web_client().get("/dashboard/routing/").content.decode()

    assert 'href="/dashboard/routing/" aria-current="page">Routing</a>' in content
    assert '<div class="stat-value" id="routed-requests">2</div>' in content
    assert '<div class="stat-value" id="escalation-rate">50%</div>' in content
    assert '<div class="stat-value" id="saved-usd">$0.006000</div>' in content
    assert '<div class="stat-value" id="failure">20% / 50%</div>' in content
    assert '<span class="bar-label">Tier 1</span>\n      <span class="bar-value">100%' in content
    cost = re.search(r'<script id="routing-cost-chart-data" type="application/json">(.*?)</script>', content)
    assert cost is not None
    (spent, saved) = json.loads(cost.group(1))["series"]
    assert (spent["label"], saved["label"]) == ("Spent", "Saved")
    assert (spent["values"][-1], saved["values"][-1]) == (pytest.approx(0.002), pytest.approx(0.006))
    outsider = other_tenant.web_client().get("/dashboard/routing/").content.decode()
    assert '<div class="stat-value" id="routed-requests">0</div>' in outsider


def test_the_dashboard_changes_the_quality_target_for_managers_only(tenant: TenantFixture) -> None:
    client = tenant.web_client()
    saved = client.post("/dashboard/routing/", {"quality_target": "0.85", "exploration_rate": "0.05"})
    assert saved.status_code == 302
    assert TenantRouting.objects.get(tenant=tenant.tenant).quality_target == Decimal("0.85")

    refused = client.post("/dashboard/routing/", {"quality_target": "1.5", "exploration_rate": "0"})
    assert refused.status_code == 200
    assert "Ensure this value is less than or equal to 1.00" in refused.content.decode()
    assert TenantRouting.objects.get(tenant=tenant.tenant).quality_target == Decimal("0.85")
    assert tenant.web_client(logged_in=False).get("/dashboard/routing/").status_code == 302


def test_learned_outcomes_outlive_redis_losing_them(serving_tenant: TenantFixture) -> None:
    tenant_id = serving_tenant.tenant.pk
    learned = {"global-v1|3:text|1": Tally(4.0, 10.0, 2.5)}
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        client.delete(outcomes_key(tenant_id))
        client.hset(outcomes_key(tenant_id), mapping=tally_mapping(learned))
        committed(lambda: TenantRouting.objects.get_or_create(tenant_id=tenant_id))
        assert committed(snapshot_outcomes) >= 1
        assert committed(lambda: TenantRouting.objects.get(tenant_id=tenant_id).outcomes_snapshot) == {
            "global-v1|3:text|1": [4.0, 10.0, 2.5]
        }
        client.delete(outcomes_key(tenant_id))  # Redis loses them

        async def load() -> TenantRouterConfig:
            cache = RouterConfigCache(aioredis.Redis.from_url(settings.REDIS_URL))
            await cache.refresh(tenant_id)
            await cache.redis.aclose()
            await sync_to_async(lambda: connection.close())()  # asgiref's thread read the settings
            return cache.entries[tenant_id][1]

        assert asyncio.run(load()).outcomes == learned
        assert parse_outcomes(client.hgetall(outcomes_key(tenant_id))) == learned  # reseeded
