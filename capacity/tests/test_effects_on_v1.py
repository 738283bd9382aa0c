"""Each degrade effect observed through /v1, against the served platform and the
simulated provider: the header, the capped output, the dropped turns, the
cheaper tier, and low-priority keys shed while high-priority ones pass."""

from __future__ import annotations

from typing import Any

import httpx

from capacity.levels import Level
from gateway.simulated.provider import ChatMessage, answer_words, count_prompt_tokens
from tenants.models import ApiKeyPriority, ApiKeyScope
from tenants.services import create_api_key
from testing.capacity import held_at
from testing.database import committed
from testing.tenants import TenantFixture

HARD = "Let p = (1, 2, 5, 4)(2, 3) in S_5 . Find the index of <p> in S_5.\nA. 8\nB. 2\nC. 24\nD. 120\nAnswer:"
SHORT = [{"role": "user", "content": "Say something about capacity."}]


def chat(gateway: str, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{gateway}/chat/completions",
        json={"model": "sim-small", "messages": SHORT, **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def key_of(tenant: TenantFixture, priority: ApiKeyPriority) -> str:
    issued = committed(
        lambda: create_api_key(
            tenant.tenant, name=f"{priority} priority", scopes=[ApiKeyScope.INFERENCE], priority=priority
        )
    )
    return issued.secret


def test_the_output_limit_is_capped_and_the_response_says_so(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    with held_at(Level.DEGRADED, max_tokens=10):
        response = chat(gateway, serving_tenant.admin_key, max_tokens=50)

    assert response.status_code == 200, response.text
    assert response.headers["x-aiaas-degraded"] == "degraded"
    body = response.json()
    assert body["usage"]["completion_tokens"] == 10
    assert body["choices"][0]["finish_reason"] == "length"


def test_a_request_no_switch_changed_carries_no_header(gateway: str, serving_tenant: TenantFixture) -> None:
    with held_at(Level.DEGRADED, max_tokens=100, context_tokens=1000, shed_priorities=["low"]):
        response = chat(gateway, serving_tenant.admin_key, max_tokens=50)

    assert response.status_code == 200, response.text
    assert "x-aiaas-degraded" not in response.headers
    assert response.json()["usage"]["completion_tokens"] == 50


def test_the_oldest_turns_are_dropped_past_the_budget_and_the_system_message_kept(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    long = " ".join(["lorem"] * 400)  # about 600 tokens as the budget counts
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"first {long}"},
        {"role": "assistant", "content": f"second {long}"},
        {"role": "user", "content": f"third {long}"},
        {"role": "user", "content": "And now?"},
    ]
    with held_at(Level.DEGRADED, context_tokens=1000):
        response = chat(gateway, serving_tenant.admin_key, model="sim-large", messages=messages)

    assert response.status_code == 200, response.text
    assert response.headers["x-aiaas-degraded"] == "degraded"
    kept = [ChatMessage(m["role"], m["content"]) for m in (messages[0], messages[3], messages[4])]
    body = response.json()
    assert body["choices"][0]["message"]["content"] == " ".join(answer_words(kept))
    assert body["usage"]["prompt_tokens"] == count_prompt_tokens(kept)


def test_auto_prefers_a_cheaper_tier(gateway: str, serving_tenant: TenantFixture) -> None:
    hard = [{"role": "user", "content": HARD}]
    normal = chat(gateway, serving_tenant.admin_key, model="auto", messages=hard)
    with held_at(Level.DEGRADED, quality_target=0.5):
        degraded = chat(gateway, serving_tenant.admin_key, model="auto", messages=hard)

    assert (normal.status_code, degraded.status_code) == (200, 200)
    assert normal.headers["x-aiaas-tier"] == "3"
    assert "x-aiaas-degraded" not in normal.headers
    assert int(degraded.headers["x-aiaas-tier"]) < 3
    assert degraded.headers["x-aiaas-degraded"] == "degraded"
    assert "quality target 0.50" in degraded.headers["x-aiaas-route-reason"]


def test_low_priority_keys_are_shed_with_retry_after_while_high_priority_keys_pass(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    low, high = key_of(serving_tenant, ApiKeyPriority.LOW), key_of(serving_tenant, ApiKeyPriority.HIGH)
    with held_at(Level.CRITICAL, shed_priorities=["low", "normal"]):
        shed = chat(gateway, low)
        shed_normal = chat(gateway, serving_tenant.admin_key)
        embeddings = httpx.post(
            f"{gateway}/embeddings",
            json={"model": "sim-small", "input": "x"},
            headers={"authorization": f"Bearer {low}"},
            timeout=30,
        )
        served = chat(gateway, high)
    after = chat(gateway, low)

    assert (shed.status_code, shed_normal.status_code, embeddings.status_code) == (503, 503, 503)
    assert shed.headers["retry-after"] == "30"
    assert shed.headers["x-aiaas-degraded"] == "critical"
    assert shed.json()["error"]["code"] == "degraded_shed"
    assert served.status_code == 200, served.text
    assert "x-aiaas-degraded" not in served.headers
    assert after.status_code == 200, after.text
