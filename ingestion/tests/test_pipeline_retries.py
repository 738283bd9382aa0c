"""An embeddings batch the gateway refuses: rate limits and upstream failures are
retried with backoff, a spent budget fails the document at once."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django_tenants.utils import tenant_context
from pytest_django import Settings

from gateway.errors import GatewayError
from gateway.transports.inprocess import InProcessGateway
from ingestion import pipeline, services
from ingestion.models import Chunk, Document, DocumentStatus
from ingestion.tests.factories import key_id, make_collection
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture

GUIDE = "# Guide\n\nThe widget needs two batteries.\n\n## Cleaning\n\nWipe the widget with a dry cloth."
RATE_LIMITED = GatewayError(
    429, "Rate limit reached.", "rate_limit_error", "upstream_rate_limited", retry_after=1.0
)
UNAVAILABLE = GatewayError(
    503, "The model provider failed: overloaded", "service_unavailable_error", "upstream_overloaded"
)


@pytest.fixture
def fast_backoff(settings: Settings) -> None:
    settings.INGESTION_RETRY_BASE_SECONDS = 0.01
    settings.INGESTION_RETRY_MAX_SECONDS = 0.05


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoffs the pipeline waited, each still really slept."""
    waited: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return waited


def failing_first(monkeypatch: pytest.MonkeyPatch, errors: list[GatewayError]) -> list[str]:
    """The in-process gateway raises `errors` on its first embeddings calls, then answers
    for real; the request ids of every call are returned.

    Why a patch: the simulated provider fails only a request whose `user` is
    `fault:<name>`, and the pipeline sends no `user`, so no real upstream fault reaches
    this path without changing production code. Only the gateway's answer is replaced;
    the pipeline's retry, backoff and bookkeeping run as they do in production.
    """
    real = InProcessGateway.embeddings
    calls: list[str] = []
    pending = list(errors)

    async def embeddings(
        self: InProcessGateway, api_key: Any, request: Any, request_id: str, **options: Any
    ) -> Any:
        calls.append(request_id)
        if pending:
            raise pending.pop(0)
        return await real(self, api_key, request, request_id, **options)

    monkeypatch.setattr(InProcessGateway, "embeddings", embeddings)
    return calls


def ingested(document: Document) -> Document:
    pipeline.ingest(document.pk)
    document.refresh_from_db()
    return document


@pytest.mark.usefixtures("fast_backoff")
def test_a_rate_limit_then_an_upstream_failure_are_retried_and_the_document_ends_ready(
    tenant: TenantFixture, registry: str, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    calls = failing_first(monkeypatch, [RATE_LIMITED, UNAVAILABLE])
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        document, _ = services.add_text(collection, text=GUIDE, api_key_id=key_id(tenant))

        document = ingested(document)

        assert document.status == DocumentStatus.READY, document.error
        assert (document.generation, document.chunks.count()) == (1, 2)
        assert document.usage_prompt_tokens > 0
    assert len(set(calls)) == 3  # a fresh request id per attempt
    # Retry-After (1 s) capped at the maximum, then the exponential base * 2**1.
    assert sleeps == [0.05, 0.02]


@pytest.mark.usefixtures("fast_backoff")
def test_a_batch_still_refused_after_the_last_retry_fails_its_document(
    tenant: TenantFixture,
    registry: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    settings.INGESTION_EMBEDDING_RETRIES = 2
    calls = failing_first(monkeypatch, [UNAVAILABLE] * 3)
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        document, _ = services.add_text(collection, text=GUIDE, api_key_id=key_id(tenant))

        document = ingested(document)

        assert document.status == DocumentStatus.FAILED
        assert (
            document.error
            == "embedding failed (503 upstream_overloaded): The model provider failed: overloaded"
        )
        assert document.chunks.count() == 0
    assert len(calls) == 3
    assert sleeps == [0.01, 0.02]


@pytest.mark.usefixtures("fast_backoff")
def test_a_spent_budget_fails_the_document_at_once_and_keeps_the_current_generation(
    tenant: TenantFixture, registry: str, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    """A real refusal: the gateway's own limits deny a key whose budget is spent."""
    calls = failing_first(monkeypatch, [])
    broke = committed(
        lambda: create_api_key(
            tenant.tenant,
            name="broke",
            scopes=[ApiKeyScope.INFERENCE],
            monthly_spend_budget_usd=Decimal("0.00"),
        )
    )
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        stored = services.store_file(
            b"first version of the notes",
            filename="notes.txt",
            purpose="assistants",
            content_type="text/plain",
            api_key_id=key_id(tenant),
        )
        document, _ = services.add_file(collection, stored, api_key_id=key_id(tenant))
        document = ingested(document)
        assert document.status == DocumentStatus.READY, document.error
        stored.content.save(stored.id, ContentFile(b"# New\n\nsecond version, rewritten"), save=True)
        Document.objects.filter(pk=document.pk).update(api_key_id=broke.api_key.pk)
        calls_before = len(calls)

        document = ingested(services.reingest(document))

        assert document.status == DocumentStatus.FAILED
        assert document.error.startswith("embedding failed (429 key_spend_budget): "), document.error
        assert document.error.endswith("has been reached."), document.error
        assert document.generation == 1
        assert set(Chunk.objects.filter(document=document).values_list("generation", "text")) == {
            (1, "first version of the notes")
        }
    assert len(calls) - calls_before == 1
    assert sleeps == []
