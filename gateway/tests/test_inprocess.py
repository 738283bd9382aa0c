"""The in-process client (agent runs; ingestion and evals next) runs the chat
service as /v1 does: typed requests in, the ledger settled, errors typed."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from billing.models import UsageEvent
from billing.usage import flush_usage_events
from gateway.errors import GatewayError
from gateway.transports.inprocess import Completion, Embeddings, InProcessGateway
from tenants.selectors import find_usable_api_key
from testing.tenants import TenantFixture


def ledger(request_id: str) -> UsageEvent:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        flush_usage_events(batch_size=1000)
        event = UsageEvent.objects.filter(request_id=request_id).first()
        if event is not None:
            return event
        time.sleep(0.1)
    raise AssertionError(f"no usage event for {request_id}")


def test_chat_and_embeddings_in_process_are_metered_like_v1(
    platform_url: str, serving_tenant: TenantFixture
) -> None:
    """(platform_url: the session's server, whose teardown also ends the
    database sessions this client's threads opened.)"""
    api_key = find_usable_api_key(serving_tenant.admin_key)
    assert api_key is not None
    chat_id, embed_id = f"req_{uuid.uuid4().hex}", f"req_{uuid.uuid4().hex}"

    async def calls() -> tuple[Completion, Embeddings]:
        gateway = InProcessGateway()
        try:
            completion = await gateway.chat(
                api_key, {"model": "sim-small", "messages": [{"role": "user", "content": "Hi"}]}, chat_id
            )
            vectors = await gateway.embeddings(
                api_key, {"model": "sim-small", "input": ["a", "b c"]}, embed_id
            )
            return completion, vectors
        finally:
            await gateway.aclose()

    completion, embeddings = asyncio.run(calls())

    assert completion.content
    assert len(embeddings.vectors) == 2
    assert len(embeddings.vectors[0]) == len(embeddings.vectors[1]) > 0
    assert ledger(chat_id).completion_tokens == completion.completion_tokens
    assert ledger(embed_id).prompt_tokens == embeddings.prompt_tokens > 0


def test_an_invalid_in_process_request_is_a_typed_400(
    platform_url: str, serving_tenant: TenantFixture
) -> None:
    api_key = find_usable_api_key(serving_tenant.admin_key)
    assert api_key is not None

    async def call() -> None:
        gateway = InProcessGateway()
        try:
            await gateway.chat(api_key, {"model": "sim-small", "messages": []}, f"req_{uuid.uuid4().hex}")
        finally:
            await gateway.aclose()

    with pytest.raises(GatewayError) as refused:
        asyncio.run(call())

    assert (refused.value.status, refused.value.param) == (400, "messages")
