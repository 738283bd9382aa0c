"""Stored files, collections and documents of a test tenant, embedded by the simulated provider."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from ingestion import services
from ingestion.models import Collection, Document, DocumentSource, DocumentStatus, StoredFile
from testing.tenants import TenantFixture

SAMPLES = Path(__file__).parent / "samples"
EMBEDDING_MODEL = "sim-small"
# The file `make_collection_with_file` attaches: routes under a collection name it by this id.
ATTACHED_FILE_ID = "file-attachedbyfactories0000"
NOTES = b"# Notes\n\nTenancy keeps each tenant's documents apart.\n"


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


def upload(name: str = "notes.md", content: bytes = NOTES) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/markdown")


def make_stored_file(tenant: TenantFixture) -> StoredFile:
    with tenant_context(tenant.tenant):
        return services.store_file(
            ContentFile(NOTES), filename="notes.md", purpose="assistants", content_type="", api_key_id=None
        )


def make_collection_with_file(tenant: TenantFixture) -> Collection:
    """A collection holding the stored file ATTACHED_FILE_ID as a queued document."""
    collection = make_stored_collection(tenant)
    with tenant_context(tenant.tenant):
        stored = StoredFile(id=ATTACHED_FILE_ID, filename="notes.md", purpose="assistants", bytes=len(NOTES))
        stored.content.save(stored.id, ContentFile(NOTES), save=False)
        stored.save(force_insert=True)
        Document.objects.create(
            collection=collection, source=DocumentSource.UPLOAD, file=stored, bytes=stored.bytes
        )
        return collection


def make_collection_and_unattached_file(tenant: TenantFixture) -> Collection:
    """A collection, and the stored file ATTACHED_FILE_ID not yet in it."""
    collection = make_collection_with_file(tenant)
    with tenant_context(tenant.tenant):
        Document.objects.filter(collection=collection).delete()
    return collection
