"""Real /v1 traffic through the served gateway reaches the analytics API: the
gateway queues usage events, the flusher moves them to the ledger, the rollup
worker folds them into the read model, and the summary counts them."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import httpx
from django.db.models import Sum
from django.utils import timezone

from analytics.tests.conftest import apply_all, on_another_connection
from billing import usage
from billing.models import UsageEvent
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.tenants import TenantFixture

CHAT = {"model": "sim-small", "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}


def ledger_rows_of(key_id: int, expected: int) -> int:
    """Flush the queue until the key's requests are all in the ledger (streams settle late)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        on_another_connection(lambda: usage.flush_usage_events(batch_size=1_000))
        found = UsageEvent.objects.filter(api_key_id=key_id).count()
        if found >= expected:
            return found
        time.sleep(0.2)
    return UsageEvent.objects.filter(api_key_id=key_id).count()


def test_gateway_traffic_reaches_the_summary_through_the_ledger_and_the_rollups(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    issued = on_another_connection(
        lambda: create_api_key(serving_tenant.tenant, name="analytics-e2e", scopes=[ApiKeyScope.ADMIN])
    )
    started = timezone.now()
    headers = {"authorization": f"Bearer {issued.secret}"}
    with httpx.Client(timeout=30, headers=headers) as client:
        for _ in range(4):
            assert client.post(f"{gateway}/chat/completions", json=CHAT).status_code == 200
        for _ in range(2):
            with client.stream(
                "POST", f"{gateway}/chat/completions", json={**CHAT, "stream": True}
            ) as stream:
                assert stream.status_code == 200
                stream.read()
    assert ledger_rows_of(issued.api_key.pk, 6) == 6
    apply_all()
    ledger = UsageEvent.objects.filter(api_key_id=issued.api_key.pk).aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost_usd")
    )
    window = {
        "from": (started - timedelta(hours=1)).isoformat(),
        "to": (timezone.now() + timedelta(hours=1)).isoformat(),
    }

    response = serving_tenant.api_client().get(
        "/api/v1/analytics/summary", {**window, "key": issued.api_key.prefix}
    )

    assert response.status_code == 200, response.content
    summary = response.json()
    assert (summary["requests"], summary["succeeded"], summary["errors"]) == (6, 6, {})
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (
        ledger["prompt"],
        ledger["completion"],
    )
    assert Decimal(summary["cost_usd"]) == ledger["cost"].quantize(Decimal("0.000001"))
    assert summary["latency_ms"]["p50"] is not None
    assert summary["ttft_ms"]["p50"] is not None  # the streamed requests
    assert summary["freshness"]["watermark"] >= max(
        UsageEvent.objects.filter(api_key_id=issued.api_key.pk).values_list("id", flat=True)
    )
