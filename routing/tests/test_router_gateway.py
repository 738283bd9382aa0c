"""The learned router in the live gateway, against the simulated provider:
early exit, feedback, the canary's automatic rollback and the recorded figures."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
import orjson
import pytest

from aiaas.redis_clients import sync_client
from billing.models import UsageEvent
from billing.usage import flush_usage_events
from gateway.transports.inprocess import Completion, InProcessGateway
from routing.models import DEFAULT_ROUTER_VERSION, CanaryState, ProviderModel, RouterVersion, TenantRouting
from routing.router import outcomes
from routing.router.canary import check_canaries, start_canary
from routing.router.report import routing_report
from tenants.models import ApiKey
from tenants.services import create_api_key
from tenants.tests.factories import TenantFactory
from testing.database import committed
from testing.tenants import TenantFixture

HARD = "Let p = (1, 2, 5, 4)(2, 3) in S_5 . Find the index of <p> in S_5.\nA. 8\nB. 2\nC. 24\nD. 120\nAnswer:"
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "ticket",
        "schema": {
            "type": "object",
            "properties": {"label": {"type": "string"}, "summary": {"type": "string"}},
            "required": ["label", "summary"],
        },
    },
}


def chat(gateway: str, key: str, prompt: str = HARD, **body: object) -> httpx.Response:
    return httpx.post(
        f"{gateway}/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": prompt}], **body},
        timeout=30,
        headers={"authorization": f"Bearer {key}"},
    )


def feedback(gateway: str, key: str, request_id: str, rating: str) -> httpx.Response:
    return httpx.post(
        f"{gateway}/feedback",
        json={"request_id": request_id, "rating": rating},
        timeout=10,
        headers={"authorization": f"Bearer {key}"},
    )


def ledger_row(request_id: str) -> UsageEvent:
    while flush_usage_events(batch_size=100) == 100:
        pass
    return UsageEvent.objects.get(request_id=request_id)


def test_early_exit_accepts_a_valid_cheap_answer(gateway: str, serving_tenant: TenantFixture) -> None:
    response = chat(gateway, serving_tenant.admin_key, response_format=SCHEMA)

    assert response.status_code == 200, response.text
    assert response.headers["x-aiaas-tier"] == "1"  # HARD alone would go to tier 3
    assert "early exit" in response.headers["x-aiaas-route-reason"]
    assert set(orjson.loads(response.json()["choices"][0]["message"]["content"])) == {"label", "summary"}


def test_early_exit_escalates_an_invalid_answer_and_meters_the_whole_cascade(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    response = chat(gateway, serving_tenant.admin_key, response_format=SCHEMA, user="fault:invalid_json")

    assert response.status_code == 200, response.text
    assert (response.headers["x-aiaas-model"], response.headers["x-aiaas-attempts"]) == ("sim-medium", "2")
    answer = response.json()
    assert set(orjson.loads(answer["choices"][0]["message"]["content"])) == {"label", "summary"}
    row = ledger_row(response.headers["x-request-id"])
    # Both answers were paid for: two prompts, and more than sim-medium's answer alone costs.
    assert row.prompt_tokens == 2 * answer["usage"]["prompt_tokens"]
    medium_only = (
        Decimal(1) * answer["usage"]["prompt_tokens"] + 4 * answer["usage"]["completion_tokens"]
    ) / 10**6
    assert row.cost_usd > medium_only
    assert row.model == "sim-medium"


def test_a_schema_that_is_not_json_schema_is_a_400(gateway: str, tenant: TenantFixture) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
    response = chat(gateway, tenant.admin_key, response_format=bad)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format.json_schema.schema"
    assert response.json()["error"]["code"] == "invalid_json_schema"


def test_feedback_is_taken_once_and_only_from_the_owning_tenant(
    gateway: str, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    request_id = chat(gateway, tenant.admin_key).headers["x-request-id"]
    named = chat(gateway, tenant.admin_key, model="sim-small").headers["x-request-id"]

    assert feedback(gateway, other_tenant.admin_key, request_id, "bad").status_code == 404
    assert feedback(gateway, tenant.admin_key, request_id, "meh").status_code == 400
    assert feedback(gateway, tenant.admin_key, named, "good").status_code == 404  # not routed
    assert feedback(gateway, tenant.admin_key, "req_unknown", "good").status_code == 404
    accepted = feedback(gateway, tenant.admin_key, request_id, "good")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"object": "feedback", "request_id": request_id, "rating": "good"}
    again = feedback(gateway, tenant.admin_key, request_id, "bad")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_judged"
    assert feedback(gateway, "aiaas_nope_nope", request_id, "good").status_code == 401


def test_a_canary_that_loses_quality_is_rolled_back_automatically(
    gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("routing.router.cache.REFRESH_SECONDS", 0.0)
    suffix = uuid.uuid4().hex[:8]
    canary_tenant: TenantFixture = committed(lambda: TenantFactory.create(slug=f"canary-{suffix}"))
    tenant_id, key = canary_tenant.tenant.pk, canary_tenant.admin_key

    def start() -> TenantRouting:
        cheap = RouterVersion.objects.create(name=f"always-cheap-{suffix}", threshold_shift=1.0)
        control = RouterVersion.objects.get(name=DEFAULT_ROUTER_VERSION)
        return start_canary(tenant_id, canary=cheap, share=Decimal("0.30"), control=control)

    committed(start)
    tiers = []
    # The user judges answers to HARD: the top tier's are right, the cheaper tiers' wrong.
    for _ in range(60):
        response = chat(gateway, key)
        assert response.status_code == 200, response.text
        tier = response.headers["x-aiaas-tier"]
        tiers.append(tier)
        rating = "good" if tier == "3" else "bad"
        assert feedback(gateway, key, response.headers["x-request-id"], rating).status_code == 200
    cheaper = len(tiers) - tiers.count("3")
    assert 0 < cheaper < len(tiers)  # both versions served

    assert committed(check_canaries)[CanaryState.ROLLED_BACK.value] >= 1
    routing = committed(lambda: TenantRouting.objects.get(tenant_id=tenant_id))
    assert routing.canary_state == CanaryState.ROLLED_BACK
    assert routing.canary_verdict.startswith("rolled back: canary")

    # The first request after a change may still use the settings it had.
    settling = chat(gateway, key).headers["x-aiaas-tier"]
    after = [chat(gateway, key).headers["x-aiaas-tier"] for _ in range(15)]
    assert after == ["3"] * 15
    served = [*tiers, settling, *after]

    client = sync_client()
    (today,) = outcomes.daily_figures(client, tenant_id, 1)
    assert today["routed"] == 60 + 16
    assert today["tier_3"] == served.count("3")
    assert today["canary_requests"] == len(served) - served.count("3")
    assert today["quality_observed"] == 60
    assert today["quality_failed"] == cheaper
    assert today["top_tier_cost_micros"] > today["cost_micros"] > 0
    assert sum(value for name, value in today.items() if name.startswith("decision_")) > 0


def test_in_process_calls_take_the_same_route_as_v1(gateway: str, serving_tenant: TenantFixture) -> None:
    """Agent runs call the gateway in process (gateway/transports/inprocess.py): `auto`
    gets the learned router and early exit there too, and the ledger the whole cascade."""
    api_key = ApiKey.objects.select_related("tenant", "tenant__plan").get(
        pk=serving_tenant.provisioned.issued_key.api_key.pk
    )
    request_id = f"req_{uuid.uuid4().hex}"
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": HARD}],
        "response_format": SCHEMA,
        "user": "fault:invalid_json",
    }

    async def call() -> Completion:
        in_process = InProcessGateway()
        try:
            return await in_process.chat(api_key, body, request_id)
        finally:
            await in_process.aclose()

    completion = asyncio.run(call())

    assert (completion.model_id, completion.tier) == ("sim-medium", 2)
    assert set(orjson.loads(completion.content)) == {"label", "summary"}
    row = ledger_row(request_id)
    assert row.prompt_tokens == completion.prompt_tokens  # both attempts, as metered
    assert row.cost_usd == completion.cost_usd
    assert completion.prompt_tokens == 2 * completion.data["usage"]["prompt_tokens"]


def test_saved_vs_top_tier_prices_the_registry_top_tier_whatever_the_key_allows(gateway: str) -> None:
    """A key allowed only sim-small has a chain of one model: "saved vs. top tier"
    still prices its tokens at sim-large (the registry's top capable tier), not at
    the last model of its chain (which read 0%)."""
    suffix = uuid.uuid4().hex[:8]
    fixture: TenantFixture = committed(lambda: TenantFactory.create(slug=f"saved-{suffix}"))
    issued = committed(
        lambda: create_api_key(
            fixture.tenant, name="small only", scopes=["inference"], allowed_models=["sim-small"]
        )
    )
    response = chat(gateway, issued.secret, "Hello")
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "sim-small"
    usage = response.json()["usage"]

    (today,) = outcomes.daily_figures(sync_client(), fixture.tenant.pk, 1)
    large = ProviderModel.objects.get(model_id="sim-large")
    top = (
        large.input_price_per_million * usage["prompt_tokens"]
        + large.output_price_per_million * usage["completion_tokens"]
    ) / 1_000_000
    assert today["top_tier_cost_micros"] == int(top * outcomes.MICROS)
    totals = routing_report(fixture.tenant.pk, 1)["totals"]
    assert totals["saved_share"] > 0.9
