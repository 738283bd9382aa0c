"""A level that pauses ingestion keeps new documents `queued` without sending them,
and they are sent when a level that does not pause it returns."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django_tenants.utils import tenant_context

from capacity.levels import Level
from ingestion import services
from ingestion.models import Document, DocumentStatus
from ingestion.sweeper import resume_schema
from ingestion.tests.factories import key_id, make_collection
from testing.capacity import held_at
from testing.tenants import TenantFixture


def test_new_documents_wait_queued_while_ingestion_is_paused_and_are_sent_on_resume(
    tenant: TenantFixture, registry: str, django_capture_on_commit_callbacks: Any
) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        with (
            held_at(Level.DEGRADED, pause_work=["ingestion"]),
            django_capture_on_commit_callbacks() as paused,
        ):
            document, created = services.add_text(collection, text="Paused.", api_key_id=key_id(tenant))
        with django_capture_on_commit_callbacks() as sent:
            services.add_text(collection, text="Not paused.", api_key_id=key_id(tenant))
        with django_capture_on_commit_callbacks() as resumed:
            resumed_count = resume_schema(timezone.now())
        queued = Document.objects.filter(status=DocumentStatus.QUEUED).count()

    assert created
    assert document.status == DocumentStatus.QUEUED
    assert (len(paused), len(sent)) == (0, 1)
    assert resumed_count == queued == len(resumed)
    assert queued >= 2
