"""Stored files, collections and documents, created in a tenant's schema."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from ingestion import services
from ingestion.models import Collection, Document, DocumentSource, StoredFile
from testing.tenants import TenantFixture

# The file `make_collection_with_file` attaches: routes under a collection name it by this id.
ATTACHED_FILE_ID = "file-attachedbyfactories0000"
NOTES = b"# Notes\n\nTenancy keeps each tenant's documents apart.\n"


def upload(name: str = "notes.md", content: bytes = NOTES) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/markdown")


def make_stored_file(tenant: TenantFixture) -> StoredFile:
    with tenant_context(tenant.tenant):
        return services.store_file(
            ContentFile(NOTES), filename="notes.md", purpose="assistants", content_type="", api_key_id=None
        )


def make_collection(tenant: TenantFixture) -> Collection:
    """A collection with no document (made directly: no embedding model is needed)."""
    with tenant_context(tenant.tenant):
        return Collection.objects.create(name="handbook", embedding_model="sim-small")


def make_collection_with_file(tenant: TenantFixture) -> Collection:
    """A collection holding the stored file ATTACHED_FILE_ID as a queued document."""
    with tenant_context(tenant.tenant):
        collection = Collection.objects.create(name="handbook", embedding_model="sim-small")
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
