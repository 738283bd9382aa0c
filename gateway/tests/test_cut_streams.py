"""Streams cut short are billed: the prompt in full, and the output the client
was given (estimated when the provider sent no usage). HTTP clients that hang
up, WebSocket cancels and server-side deadlines, against a provider paced like
a real one (sim-large at 20 tokens a second)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import orjson
import pytest
from django_tenants.utils import schema_context

from billing.models import UsageEvent
from billing.usage import flush_usage_events
from gateway.simulated.provider import ChatMessage, SimulatorConfig, answer_words
from gateway.validation import estimate_tokens
from realtime.tests.clients import bearer, open_socket, read_all, ws_url
from routing.catalog import invalidate_all
from routing.models import Provider, ProviderModel
from testing.database import committed
from testing.simulated import running_simulated_provider
from testing.tenants import TenantFixture

PACED_MODEL = f"paced-large-{os.getpid()}"
PROMPT = "Tell me a long story about the sea."
MESSAGES = [{"role": "user", "content": PROMPT}]
WORDS = answer_words([ChatMessage("user", PROMPT)])


@pytest.fixture(scope="module")
def paced_model(registry: str, django_db_blocker: pytest.FixtureRequest) -> Iterator[str]:
    """A model served by a simulator that paces its tokens (40/s for sim-small, so
    20/s for sim-large), registered for the duration of the module."""
    with running_simulated_provider(SimulatorConfig(tokens_per_second=40)) as url:
        with django_db_blocker.unblock():  # type: ignore[attr-defined]
            provider, model = committed(lambda: register_paced(url))
        invalidate_all("")  # every catalog snapshot of this process, the served gateway's too
        yield PACED_MODEL
        with django_db_blocker.unblock():  # type: ignore[attr-defined]
            committed(lambda: (model.delete(), provider.delete()))
        invalidate_all("")  # every catalog snapshot of this process, the served gateway's too


def register_paced(url: str) -> tuple[Provider, ProviderModel]:
    provider = Provider.objects.create(
        slug=f"paced-{os.getpid()}",
        name="Paced simulator",
        base_url=url,
        auth_style="none",
        is_simulated=True,
        total_timeout_seconds=2.8,
    )
    model = ProviderModel.objects.create(
        model_id=PACED_MODEL,
        provider=provider,
        upstream_model="sim-large",
        tier=3,
        context_window=65_536,
        input_price_per_million=Decimal("5.00"),
        output_price_per_million=Decimal("15.00"),
    )
    return provider, model


def ledger_row(request_id: str, timeout: float = 10.0) -> UsageEvent:
    """The request's usage event once the gateway has settled it and the ledger
    has flushed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flush_usage_events(batch_size=1000)
        with schema_context("public"):
            event = UsageEvent.objects.filter(request_id=request_id).first()
        if event is not None:
            return event
        time.sleep(0.1)
    raise AssertionError(f"no usage event for {request_id}")


def read_then_hang_up(gateway: str, key: str, model: str, events: int) -> tuple[str, int]:
    """Read `events` SSE chunks with content, then close the connection."""
    read = 0
    with httpx.stream(
        "POST",
        f"{gateway}/chat/completions",
        json={"model": model, "messages": MESSAGES, "stream": True},
        headers=bearer(key),
        timeout=20,
    ) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: {") and orjson.loads(line[6:])["choices"][0]["delta"].get("content"):
                read += 1
                if read == events:
                    break
    return request_id, read


def billed_words(event: UsageEvent) -> set[int]:
    """How many answer words a completion-token figure can stand for (the
    estimate is by characters)."""
    return {
        count
        for count in range(len(WORDS) + 1)
        if estimate_tokens(" ".join(WORDS[:count])) == event.completion_tokens
    }


@pytest.mark.parametrize("events", [1, 10, 40])
def test_a_client_hanging_up_pays_for_the_prompt_and_what_it_was_sent(
    gateway: str, serving_tenant: TenantFixture, paced_model: str, events: int
) -> None:
    request_id, read = read_then_hang_up(gateway, serving_tenant.admin_key, paced_model, events)

    event = ledger_row(request_id)
    assert read == events
    assert (event.status, event.error_type, event.estimated) == (499, "client_disconnected", True)
    assert event.prompt_tokens == estimate_tokens(PROMPT, 1)
    # What was sent: the words read, and at most the one in flight when the hang-up was seen.
    assert billed_words(event) & {events, events + 1}
    assert event.cost_usd > 0
    assert event.completion_tokens < estimate_tokens(" ".join(WORDS))


def test_a_websocket_cancel_pays_for_the_prompt_and_what_was_sent(
    gateway: str, serving_tenant: TenantFixture, paced_model: str
) -> None:
    async def chat() -> list[dict[str, object]]:
        url = ws_url(gateway, "/ws/v1/chat/completions")
        async with open_socket(url, bearer(serving_tenant.admin_key)) as socket:
            await socket.send(orjson.dumps({"model": paced_model, "messages": MESSAGES}).decode())
            first = orjson.loads(await socket.recv())
            await asyncio.sleep(0.5)  # about ten more words
            await socket.send('{"type": "cancel"}')
            return [first, *await read_all(socket)]

    messages = asyncio.run(chat())

    final = messages[-1]
    assert (final["type"], final["error"]["code"]) == ("error", "cancelled")  # type: ignore[index]
    text = "".join(str(message.get("delta") or "") for message in messages if message["type"] == "chunk")
    request_id = ledger_request_id(serving_tenant, paced_model)
    event = ledger_row(request_id)
    assert (event.status, event.error_type, event.estimated) == (499, "cancelled", True)
    assert event.prompt_tokens == estimate_tokens(PROMPT, 1)
    assert 0 < event.completion_tokens < estimate_tokens(" ".join(WORDS))
    assert event.completion_tokens >= estimate_tokens(text)


def test_a_dropped_websocket_completion_runs_on_and_is_billed_in_full(
    gateway: str, serving_tenant: TenantFixture, paced_model: str
) -> None:
    """A socket that drops is not a cancel: the completion runs to its end into its
    stream log (a client may resume it), and the ledger has all of it."""

    async def chat_then_drop() -> None:
        url = ws_url(gateway, "/ws/v1/chat/completions")
        body = {"model": paced_model, "messages": MESSAGES, "max_tokens": 30}  # 1.5 s of answer
        async with open_socket(url, bearer(serving_tenant.admin_key)) as socket:
            await socket.send(orjson.dumps(body).decode())
            await socket.recv()
            socket.transport.abort()  # no close frame: the connection is simply gone

    asyncio.run(chat_then_drop())

    event = ledger_row(ledger_request_id(serving_tenant, paced_model, status=200, error_type=""))
    assert event.completion_tokens == 30  # the provider's own usage: the whole answer
    assert event.prompt_tokens > 0
    assert not event.estimated


def ledger_request_id(
    tenant: TenantFixture, model: str, status: int = 499, error_type: str = "cancelled"
) -> str:
    """The latest request of `tenant` on `model` (a WebSocket chat's id is in its
    done event only)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        flush_usage_events(batch_size=1000)
        with schema_context("public"):
            event = (
                UsageEvent.objects.filter(
                    tenant_id=tenant.tenant.pk, model=model, status=status, error_type=error_type
                )
                .order_by("-created_at")
                .first()
            )
        if event is not None:
            return event.request_id
        time.sleep(0.1)
    raise AssertionError(f"no chat with status {status} reached the ledger")


def test_a_stream_past_its_deadline_pays_for_what_it_produced(
    gateway: str, serving_tenant: TenantFixture, paced_model: str
) -> None:
    """The paced provider's 2.8 s deadline ends a 3.2 s answer: the client got an
    error event, and the ledger has the prompt and the words produced."""
    with httpx.stream(
        "POST",
        f"{gateway}/chat/completions",
        json={"model": paced_model, "messages": MESSAGES, "stream": True},
        headers=bearer(serving_tenant.admin_key),
        timeout=20,
    ) as response:
        request_id = response.headers["x-request-id"]
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]

    assert "upstream_timeout" in lines[-1]
    words = sum(1 for line in lines if '"content"' in line)
    event = ledger_row(request_id)
    assert event.prompt_tokens == estimate_tokens(PROMPT, 1)
    assert words in billed_words(event)
    assert event.estimated
