"""Every provider fault ends in a complete answer from a fallback or a clear,
typed error; never a truncated answer reported as success.

The simulated provider applies `user: "fault:<name>"` to sim-small only, so
naming sim-small (the higher tiers are its fallbacks) shows the fallback, and a
key allowed only sim-small shows the error a client gets when nothing can take
over.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from pytest_django import DjangoDbBlocker

from gateway.simulated.provider import ChatMessage, answer_words
from routing.tests.conftest import simulator_stats
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture

PROMPT = "Tell me about failover."
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]
EXPECTED = " ".join(answer_words([ChatMessage("user", PROMPT)]))
FAULTS = [
    "rate_limited",
    "rate_limited_no_retry_after",
    "error_once",
    "unavailable",
    "reset",
    "no_response",
    "slow_first_token",
    "stream_cut",
    "stream_stall",
    "malformed_chunk",
    "missing_done",
    "context_length",
    "flapping",
]


@pytest.fixture(scope="module")
def small_only_key(django_db_setup: dict[str, TenantFixture], django_db_blocker: DjangoDbBlocker) -> str:
    """A key that may use sim-small only: no fallback can take over."""
    tenant = django_db_setup["serving"].tenant
    with django_db_blocker.unblock():
        issued = committed(
            lambda: create_api_key(
                tenant, name="small only", scopes=[ApiKeyScope.INFERENCE], allowed_models=["sim-small"]
            )
        )
    return issued.secret


def post(gateway: str, key: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{gateway}/chat/completions",
        json={"messages": MESSAGES, **body},
        timeout=30,
        headers={"authorization": f"Bearer {key}"},
    )


def read_stream(gateway: str, key: str, **body: object) -> tuple[httpx.Response, list[str]]:
    with httpx.stream(
        "POST",
        f"{gateway}/chat/completions",
        timeout=30,
        json={"messages": MESSAGES, "stream": True, **body},
        headers={"authorization": f"Bearer {key}"},
    ) as response:
        return response, [line.removeprefix("data: ") for line in response.iter_lines() if line]


def streamed_text(events: list[str]) -> str:
    chunks = [httpx.Response(200, content=event).json() for event in events if event != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_falls_back_to_a_complete_answer(gateway: str, tenant: TenantFixture, fault: str) -> None:
    response = post(gateway, tenant.admin_key, model="sim-small", user=f"fault:{fault}")

    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == EXPECTED
    assert response.json()["choices"][0]["finish_reason"] == "stop"
    if fault not in {"missing_done", "flapping"}:  # missing_done only concerns streams
        assert response.headers["x-aiaas-model"] == "sim-medium"
    assert int(response.headers["x-aiaas-attempts"]) <= 3


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_in_a_stream_still_delivers_the_whole_answer(
    gateway: str, tenant: TenantFixture, fault: str
) -> None:
    response, events = read_stream(
        gateway,
        tenant.admin_key,
        model="sim-small",
        user=f"fault:{fault}",
        stream_options={"include_usage": True},
    )

    assert response.status_code == 200, events
    assert events[-1] == "[DONE]"
    assert streamed_text(events) == EXPECTED
    usage = httpx.Response(200, content=events[-2]).json()["usage"]
    assert usage["completion_tokens"] >= len(EXPECTED.split())


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("rate_limited", 429, "upstream_rate_limited"),
        ("rate_limited_no_retry_after", 429, "upstream_rate_limited"),
        ("unavailable", 502, "upstream_server_error"),
        ("reset", 502, "upstream_connection_error"),
        ("no_response", 504, "upstream_timeout"),
        ("slow_first_token", 504, "upstream_timeout"),
        ("stream_cut", 502, "upstream_stream_cut"),
        ("malformed_chunk", 502, "upstream_bad_response"),
        ("context_length", 400, "context_length_exceeded"),
    ],
)
def test_without_a_fallback_the_client_gets_a_typed_error(
    gateway: str, small_only_key: str, simulator_url: str, fault: str, status: int, code: str
) -> None:
    response = post(gateway, small_only_key, model="sim-small", user=f"fault:{fault}")

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1
    assert simulator_stats(simulator_url)["requests_by_model"].get("sim-small", 0) <= 3


def test_a_stream_nobody_can_finish_ends_in_an_error_event_not_done(
    gateway: str, small_only_key: str
) -> None:
    response, events = read_stream(gateway, small_only_key, model="sim-small", user="fault:stream_cut")

    assert response.status_code == 200
    assert "[DONE]" not in events
    assert httpx.Response(200, content=events[-1]).json()["error"]["code"] == "upstream_stream_cut"
    assert EXPECTED.startswith(streamed_text(events[:-1]))


def test_the_sdk_raises_instead_of_returning_a_truncated_stream(gateway: str, small_only_key: str) -> None:
    client = openai.OpenAI(base_url=gateway, api_key=small_only_key, max_retries=0, timeout=20)
    stream = client.chat.completions.create(
        model="sim-small",
        messages=MESSAGES,
        stream=True,
        user="fault:stream_cut",
    )

    with pytest.raises(openai.APIError):
        list(stream)


def test_the_breaker_opens_and_later_requests_skip_the_failing_model(
    gateway: str, tenant: TenantFixture, simulator_url: str
) -> None:
    for _ in range(5):
        assert post(gateway, tenant.admin_key, model="sim-small", user="fault:unavailable").status_code == 200
    calls_before = simulator_stats(simulator_url)["requests_by_model"]["sim-small"]

    response = post(gateway, tenant.admin_key, model="sim-small")

    assert response.status_code == 200
    assert response.headers["x-aiaas-model"] == "sim-medium"
    assert response.headers["x-aiaas-attempts"] == "1"
    assert simulator_stats(simulator_url)["requests_by_model"]["sim-small"] == calls_before
