"""Every /v1 request is metered exactly once, and Idempotency-Key holds on /v1."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from billing.limits import Limiter
from billing.models import UsageEvent
from billing.usage import flush_usage_events
from gateway.service import GatewayClients
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.database import committed
from testing.metrics import registry_value
from testing.tenants import TenantFixture

BODY = {"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": "Meter me."}]}
UNMETERED = "aiaas_gateway_unmetered_requests_total"


def call(gateway: str, key: str, body: dict[str, object], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gateway}/chat/completions",
        json=body,
        timeout=20,
        headers={"authorization": f"Bearer {key}", **headers},
    )


def ledger_rows(request_ids: set[str], timeout: float = 10.0) -> dict[str, UsageEvent]:
    """The ledger rows of `request_ids` once all are flushed (a stream settles after
    its last byte is sent, so its event may land a moment after the client is done)."""
    deadline = time.monotonic() + timeout
    while True:
        flush_usage_events(batch_size=100)
        events = {event.request_id: event for event in UsageEvent.objects.filter(request_id__in=request_ids)}
        if set(events) == request_ids or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_every_admitted_request_reaches_the_ledger_once_and_refusals_are_only_counted(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    key = serving_tenant.admin_key
    refusals_before = registry_value(UNMETERED, status="404", error_type="model_not_found")
    plain = call(gateway, key, BODY)
    refused = call(gateway, key, {**BODY, "model": "gpt-nope"})
    labelled = call(gateway, key, {**BODY, "model": "sim-small"}, **{"x-request-id": "mine-1"})
    with httpx.stream(
        "POST",
        f"{gateway}/chat/completions",
        json={**BODY, "stream": True},
        timeout=20,
        headers={"authorization": f"Bearer {key}"},
    ) as streamed:
        streamed.read()

    ids = [r.headers["x-request-id"] for r in (plain, refused, labelled, streamed)]
    events = ledger_rows({ids[0], ids[2], ids[3]})
    assert set(events) == {ids[0], ids[2], ids[3]}
    assert registry_value(UNMETERED, status="404", error_type="model_not_found") == refusals_before + 1
    assert labelled.headers["x-client-request-id"] == "mine-1"
    assert (events[ids[0]].status, events[ids[0]].model, events[ids[0]].completion_tokens) == (
        200,
        plain.headers["x-aiaas-model"],
        plain.json()["usage"]["completion_tokens"],
    )
    assert events[ids[0]].cost_usd > 0
    assert events[ids[3]].status == 200
    assert events[ids[3]].ttft_ms is not None
    assert all(event.tenant_id == serving_tenant.tenant.pk for event in events.values())


def test_an_idempotent_replay_returns_the_first_answer_without_a_second_call(
    gateway: str, serving_tenant: TenantFixture, simulator_url: str
) -> None:
    key = serving_tenant.admin_key
    first = call(gateway, key, BODY, **{"idempotency-key": "order-42"})
    replay = call(gateway, key, BODY, **{"idempotency-key": "order-42"})
    mismatch = call(gateway, key, {**BODY, "max_tokens": 3}, **{"idempotency-key": "order-42"})

    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert mismatch.status_code == 422
    assert mismatch.json()["error"]["code"] == "idempotency_key_mismatch"
    stats = httpx.get(simulator_url.removesuffix("/v1") + "/_sim/stats", timeout=5).json()
    assert sum(stats["requests_by_model"].values()) == 1


def test_another_tenant_using_the_same_idempotency_key_gets_its_own_answer(
    gateway: str, serving_tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    mine = call(gateway, serving_tenant.admin_key, BODY, **{"idempotency-key": "shared-key"})
    theirs = call(gateway, other_tenant.admin_key, BODY, **{"idempotency-key": "shared-key"})

    assert (mine.status_code, theirs.status_code) == (200, 200)
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]


def test_concurrent_duplicates_run_once(
    gateway: str, serving_tenant: TenantFixture, simulator_url: str
) -> None:
    headers = {"authorization": f"Bearer {serving_tenant.admin_key}", "idempotency-key": "burst-7"}

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=20, headers=headers) as client:
            return list(
                await asyncio.gather(
                    *(client.post(f"{gateway}/chat/completions", json=BODY) for _ in range(10))
                )
            )

    statuses = sorted(r.status_code for r in asyncio.run(send_all()))

    assert set(statuses) <= {200, 409}
    assert 200 in statuses
    stats = httpx.get(simulator_url.removesuffix("/v1") + "/_sim/stats", timeout=5).json()
    assert sum(stats["requests_by_model"].values()) == 1


@pytest.fixture
def redis_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's limiter (every event loop's) pointed at a Redis that does not answer."""
    import redis.asyncio as aioredis

    dead = Limiter(aioredis.Redis(unix_socket_path="/nonexistent/redis.sock", socket_connect_timeout=0.2))
    # A property is a data descriptor: it wins over the limiter each set has cached.
    monkeypatch.setattr(GatewayClients, "limiter", property(lambda _clients: dead))


def test_limits_fail_closed_when_redis_is_down(
    gateway: str, serving_tenant: TenantFixture, redis_down: None, simulator_url: str
) -> None:
    response = call(gateway, serving_tenant.admin_key, BODY)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "limits_unavailable"
    assert int(response.headers["retry-after"]) >= 1
    stats = httpx.get(simulator_url.removesuffix("/v1") + "/_sim/stats", timeout=5).json()
    assert sum(stats["requests_by_model"].values()) == 0


def test_a_key_created_for_a_test_is_metered_under_its_own_id(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    issued = committed(
        lambda: create_api_key(serving_tenant.tenant, name="metered", scopes=[ApiKeyScope.INFERENCE])
    )

    response = call(gateway, issued.secret, BODY)
    while flush_usage_events(batch_size=100) == 100:
        pass

    event = UsageEvent.objects.get(request_id=response.headers["x-request-id"])
    assert event.api_key_id == issued.api_key.pk


def test_a_tenant_that_logs_requests_gets_prompt_and_answer_in_its_own_schema(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    from django_tenants.utils import tenant_context

    from request_logs.models import RequestLog
    from request_logs.services import flush_request_logs
    from tenants.models import Tenant

    def enable_logging(enabled: bool) -> None:
        Tenant.objects.filter(pk=serving_tenant.tenant.pk).update(request_logging_enabled=enabled)

    committed(lambda: enable_logging(True))
    try:
        issued = committed(lambda: create_api_key(serving_tenant.tenant, name="logged", scopes=["inference"]))
        response = call(gateway, issued.secret, BODY)
        with httpx.stream(
            "POST",
            f"{gateway}/chat/completions",
            json={**BODY, "stream": True},
            timeout=20,
            headers={"authorization": f"Bearer {issued.secret}"},
        ) as streamed:
            streamed.read()
        # A stream settles (and queues its log) after its last byte: flush until both
        # logs are stored, before logging is turned off (the flush drops what a tenant
        # no longer logs).
        wanted = {response.headers["x-request-id"], streamed.headers["x-request-id"]}
        deadline = time.monotonic() + 10.0
        while True:
            flush_request_logs(batch_size=100)
            with tenant_context(serving_tenant.tenant):
                logs = {log.request_id: log for log in RequestLog.objects.filter(request_id__in=wanted)}
            if set(logs) == wanted or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        committed(lambda: enable_logging(False))

    plain = logs[response.headers["x-request-id"]]
    assert plain.request_body["messages"] == BODY["messages"]
    assert plain.response_text == response.json()["choices"][0]["message"]["content"]
    assert logs[streamed.headers["x-request-id"]].response_text == plain.response_text
