"""Reads the OpenAI routes need: collections with their file counts and usage, and
the document that stands for a file in a collection. In the tenant's schema."""

from __future__ import annotations

from django.db.models import Case, Count, F, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce

from ingestion.models import Chunk, Collection, Document, DocumentStatus, StoredFile
from ingestion.openai.objects import FileCounts

FROM_FILE = Q(documents__file__isnull=False)
IN_PROGRESS = (DocumentStatus.QUEUED, DocumentStatus.PROCESSING)


def collections_with_counts() -> QuerySet[Collection]:
    """Collections annotated with their file documents by OpenAI status and the bytes
    of all their documents, in one query."""
    return Collection.objects.annotate(
        files_in_progress=Count("documents", filter=FROM_FILE & Q(documents__status__in=IN_PROGRESS)),
        files_completed=Count("documents", filter=FROM_FILE & Q(documents__status=DocumentStatus.READY)),
        files_failed=Count("documents", filter=FROM_FILE & Q(documents__status=DocumentStatus.FAILED)),
        documents_bytes=Coalesce(Sum("documents__bytes"), 0),
    )


def counts_of(collection: Collection) -> FileCounts:
    """The counts `collections_with_counts` annotated on `collection`."""
    return FileCounts(
        in_progress=collection.files_in_progress,  # type: ignore[attr-defined]
        completed=collection.files_completed,  # type: ignore[attr-defined]
        failed=collection.files_failed,  # type: ignore[attr-defined]
    )


def file_documents(collection: Collection) -> QuerySet[Document]:
    """The collection's documents made from a stored file (its vector store files)."""
    return collection.documents.filter(file__isnull=False).select_related("collection")


def document_for_file(collection: Collection, stored_file: StoredFile) -> Document | None:
    """The document holding `stored_file`'s content in `collection`: the one made from
    it, or else the one made from another file with the same bytes (adding content a
    collection holds already is a no-op, so that document stands for both)."""
    same_content = Q(file=stored_file) | Q(file__isnull=False, content_hash=stored_file.sha256)
    candidates = collection.documents.filter(same_content).select_related("collection")
    its_own = Case(When(file=stored_file, then=Value(0)), default=Value(1))
    return candidates.order_by(its_own, "created_at").first()


def current_chunks(document: Document) -> QuerySet[Chunk]:
    """The chunks searches read: the document's current generation, in order."""
    return Chunk.objects.filter(document=document, generation=F("document__generation")).order_by("position")


def documents_by_id(ids: list[str]) -> dict[str, Document]:
    return {document.id: document for document in Document.objects.filter(id__in=ids).select_related("file")}
