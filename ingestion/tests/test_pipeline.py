"""A document's ingestion in this process: parse, chunk, embed through the gateway,
store, switch generations; re-ingestion; failures that touch nothing else."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.files.base import ContentFile
from django_tenants.utils import tenant_context

from ingestion import pipeline, services
from ingestion.models import Chunk, Document, DocumentStatus
from ingestion.tests.factories import key_id, make_collection, sample
from realtime import streams
from testing.metrics import registry_value
from testing.tenants import TenantFixture

FINISHED = "aiaas_ingestion_documents_total"
GUIDE = "# Guide\n\nThe widget needs two batteries.\n\n## Cleaning\n\nWipe the widget with a dry cloth."


def ingested(document: Document) -> Document:
    pipeline.ingest(document.pk)
    document.refresh_from_db()
    return document


def test_a_text_document_is_chunked_embedded_and_searchable(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        document, created = services.add_text(collection, text=GUIDE, api_key_id=key_id(tenant))
        assert created

        document = ingested(document)

        assert document.status == DocumentStatus.READY, document.error
        assert document.generation == 1
        chunks = list(document.chunks.order_by("position"))
        assert [c.heading for c in chunks] == ["Guide", "Guide > Cleaning"]
        assert document.chunk_count == 2 == document.chunks_done == document.chunks_total
        assert {c.dimensions for c in chunks} == {64}
        assert document.usage_prompt_tokens > 0
        collection.refresh_from_db()
        assert collection.dimensions == 64
        assert list(Chunk.objects.filter(search_vector="cloth").values_list("position", flat=True)) == [1]
        events = streams.read(tenant.tenant.schema_name, document.stream_id)
    assert events[-1].final
    assert events[-1].event["type"] == "ingestion.ready"
    assert events[-1].event["chunks_done"] == 2


def test_adding_the_same_text_again_is_a_no_op(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        first, _ = services.add_text(collection, text=GUIDE, api_key_id=key_id(tenant))
        again, created = services.add_text(collection, text=GUIDE, title="other", api_key_id=key_id(tenant))

        assert (again.pk, created) == (first.pk, False)
        assert Document.objects.filter(collection=collection).count() == 1


def test_reingesting_unchanged_content_writes_nothing(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        document, _ = services.add_text(collection, text=GUIDE, api_key_id=key_id(tenant))
        document = ingested(document)
        chunk_ids = set(document.chunks.values_list("pk", flat=True))
        tokens = document.usage_prompt_tokens

        document = ingested(services.reingest(document))

        assert document.status == DocumentStatus.READY
        assert document.generation == 1
        assert set(document.chunks.values_list("pk", flat=True)) == chunk_ids
        assert document.usage_prompt_tokens == tokens


def test_changed_content_replaces_the_chunks_in_one_generation(tenant: TenantFixture, registry: str) -> None:
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
        stored.content.save(stored.id, ContentFile(b"# New\n\nsecond version, rewritten"), save=True)

        document = ingested(services.reingest(document))

        assert document.status == DocumentStatus.READY, document.error
        assert document.generation == 2
        assert set(Chunk.objects.filter(document=document).values_list("generation", "text")) == {
            (2, "# New\n\nsecond version, rewritten")
        }


def test_a_corrupt_file_fails_its_document_only(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        good, _ = services.add_text(collection, text=GUIDE, api_key_id=key_id(tenant))
        good = ingested(good)
        for name, reason in [
            ("corrupt.pdf", "the PDF cannot be read"),
            ("image.bin", "unsupported file type"),
        ]:
            stored = services.store_file(
                sample(name), filename=name, purpose="assistants", content_type="", api_key_id=key_id(tenant)
            )
            document, _ = services.add_file(collection, stored, api_key_id=key_id(tenant))

            document = ingested(document)

            assert document.status == DocumentStatus.FAILED
            assert document.error.startswith(reason), document.error
            assert document.chunks.count() == 0
        good.refresh_from_db()
        assert (good.status, good.chunks.count()) == (DocumentStatus.READY, 2)


def test_a_duplicate_delivery_after_the_end_changes_nothing(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        document, _ = services.add_text(collection, text=GUIDE, api_key_id=key_id(tenant))
        document = ingested(document)

        again = ingested(document)

        assert (again.attempts, again.generation, again.chunks.count()) == (1, 1, 2)


def test_progress_reaches_a_live_subscriber_as_it_is_published(tenant: TenantFixture, registry: str) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        document, _ = services.add_text(collection, text=GUIDE, api_key_id=key_id(tenant))
    group = streams.group_name(tenant.tenant.schema_name, document.stream_id)
    subscribed = threading.Event()

    async def listen() -> list[dict[str, Any]]:
        layer = streams.receiving_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        subscribed.set()
        messages = [await asyncio.wait_for(layer.receive(channel), 30)]
        while not messages[-1]["final"]:
            messages.append(await asyncio.wait_for(layer.receive(channel), 30))
        return messages

    with ThreadPoolExecutor(1) as executor:
        received = executor.submit(asyncio.run, listen())
        assert subscribed.wait(10)
        with tenant_context(tenant.tenant):
            ingested(document)
        messages = received.result(timeout=30)

    statuses = [message["event"]["status"] for message in messages]
    assert statuses == ["processing"] * (len(messages) - 1) + ["ready"]
    # The `queued` event is published when the adding transaction commits; this test's never does.
    assert [message["seq"] for message in messages] == list(range(1, len(messages) + 1))
    assert messages[-1]["event"]["chunks_done"] == 2


def test_each_finished_document_is_counted_once_in_the_metrics(tenant: TenantFixture, registry: str) -> None:
    before = {status: registry_value(FINISHED, status=status) for status in ("ready", "failed")}
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        good, _ = services.add_text(collection, text=GUIDE, api_key_id=key_id(tenant))
        ingested(good)
        stored = services.store_file(
            sample("image.bin"),
            filename="image.bin",
            purpose="assistants",
            content_type="",
            api_key_id=key_id(tenant),
        )
        bad, _ = services.add_file(collection, stored, api_key_id=key_id(tenant))
        ingested(bad)

    after = {status: registry_value(FINISHED, status=status) for status in ("ready", "failed")}
    assert after == {"ready": before["ready"] + 1, "failed": before["failed"] + 1}
