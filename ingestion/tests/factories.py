"""Collections and documents of a test tenant, embedded by the simulated provider."""

from __future__ import annotations

import uuid
from pathlib import Path

from django_tenants.utils import tenant_context

from ingestion import services
from ingestion.models import Collection, Document, DocumentSource, DocumentStatus
from testing.tenants import TenantFixture

SAMPLES = Path(__file__).parent / "samples"
EMBEDDING_MODEL = "sim-small"


def make_collection(tenant: TenantFixture, **options: object) -> Collection:
    defaults: dict[str, object] = {"name": f"docs-{uuid.uuid4().hex[:8]}", "embedding_model": EMBEDDING_MODEL}
    return services.create_collection(**{**defaults, **options}, api_key_id=key_id(tenant))  # type: ignore[arg-type]


def key_id(tenant: TenantFixture) -> int:
    return int(tenant.provisioned.issued_key.api_key.pk)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def make_stored_collection(tenant: TenantFixture) -> Collection:
    """A collection written directly (no registry check): for routes that only read or delete it."""
    with tenant_context(tenant.tenant):
        return Collection.objects.create(name=f"docs-{uuid.uuid4().hex[:8]}", embedding_model=EMBEDDING_MODEL)


def make_document(tenant: TenantFixture) -> Document:
    """A ready text document (never sent to a worker)."""
    collection = make_stored_collection(tenant)
    with tenant_context(tenant.tenant):
        return Document.objects.create(
            collection=collection,
            source=DocumentSource.TEXT,
            text="hello",
            content_hash=services.sha256_hex(b"hello"),
            status=DocumentStatus.READY,
            generation=1,
        )
