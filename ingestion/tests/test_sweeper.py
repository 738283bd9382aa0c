"""The sweeper queues stalled documents again and fails those out of attempts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from django_tenants.utils import tenant_context

from ingestion.models import Document, DocumentStatus
from ingestion.sweeper import sweep_schema, sweep_stalled_documents
from ingestion.tests.factories import make_stored_collection
from testing.tenants import TenantFixture


def test_stalled_documents_are_queued_again_or_failed(
    tenant: TenantFixture, django_capture_on_commit_callbacks: Any
) -> None:
    collection = make_stored_collection(tenant)
    long_ago = timezone.now() - timedelta(hours=1)
    with tenant_context(tenant.tenant):

        def document(status: str, attempts: int, heartbeat: object) -> str:
            made = Document.objects.create(
                collection=collection, source="text", text=f"{status}{attempts}{heartbeat}"
            )
            Document.objects.filter(pk=made.pk).update(
                status=status, attempts=attempts, heartbeat_at=heartbeat, updated_at=long_ago
            )
            return made.pk

        crashed = document(DocumentStatus.PROCESSING, 1, long_ago)
        never_picked = document(DocumentStatus.QUEUED, 0, None)
        exhausted = document(DocumentStatus.PROCESSING, 3, long_ago)
        alive = document(DocumentStatus.PROCESSING, 1, timezone.now())

        with django_capture_on_commit_callbacks() as sent:
            touched = sweep_schema(timezone.now())

        states = {d.pk: (d.status, d.error) for d in Document.objects.all()}
    assert touched == 3
    assert len(sent) == 2  # crashed and never_picked are sent again
    assert states[crashed] == (DocumentStatus.PROCESSING, "")
    assert states[never_picked] == (DocumentStatus.QUEUED, "")
    assert states[exhausted] == (DocumentStatus.FAILED, "ingestion did not finish after 3 attempts")
    assert states[alive] == (DocumentStatus.PROCESSING, "")
    with tenant_context(tenant.tenant):
        assert sweep_schema(timezone.now()) == 0  # touched: the next sweep waits a whole period


def test_the_sweep_covers_every_tenant(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    stalled = []
    for owner in (tenant, other_tenant):
        collection = make_stored_collection(owner)
        with tenant_context(owner.tenant):
            made = Document.objects.create(collection=collection, source="text", text="x", attempts=3)
            Document.objects.filter(pk=made.pk).update(updated_at=timezone.now() - timedelta(hours=1))
            stalled.append((owner, made.pk))

    sweep_stalled_documents()

    for owner, document_id in stalled:
        with tenant_context(owner.tenant):
            assert Document.objects.get(pk=document_id).status == DocumentStatus.FAILED
