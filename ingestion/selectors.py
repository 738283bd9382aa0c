"""Reads of collections and documents (in the tenant's schema)."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from ingestion.models import Collection, Document, DocumentStatus


def collections_list() -> QuerySet[Collection]:
    """Collections with `document_count` and `ready_count` (documents ready to search)."""
    return Collection.objects.annotate(
        document_count=Count("documents"),
        ready_count=Count("documents", filter=Q(documents__status=DocumentStatus.READY)),
    )


def documents_list(collection: Collection | str | None = None) -> QuerySet[Document]:
    """Every document, or those of one collection (the object or its id)."""
    documents = Document.objects.select_related("collection")
    return documents.filter(collection=collection) if collection is not None else documents
