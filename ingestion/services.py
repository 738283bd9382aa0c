"""Writes: stored files, collections and their documents.

Everything here runs in the tenant's schema; callers (API views, /v1 routes, the
dashboard, tests) have entered it. Adding a source never parses it: the
document is committed `queued` and ingestion is enqueued once the transaction
commits (ingestion/tasks.py), so a rolled-back request leaves no task behind.

Adding content a collection already holds is a no-op: the same bytes (SHA-256)
or, for a URL, the same address returns the existing document with
created=False. Adds to one collection are serialized by a row lock on it, so
two concurrent identical adds make one document.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import connection, transaction

from capacity.levels import PausedWork
from capacity.state import is_paused
from ingestion import progress
from ingestion.models import (
    Collection,
    Document,
    DocumentSource,
    DocumentStatus,
    FilePurpose,
    StoredFile,
)
from realtime import streams
from routing.catalog import load_catalog

HASH_BLOCK_BYTES = 1024 * 1024
METADATA_MAX_KEYS = 16
METADATA_KEY_MAX_CHARACTERS = 64
METADATA_VALUE_MAX_CHARACTERS = 512


class IngestionInputError(ValueError):
    """Input the caller can fix: a 4xx (`status`) naming the parameter."""

    def __init__(
        self, message: str, param: str | None = None, *, code: str = "invalid_value", status: int = 400
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_file(
    content: File[Any] | bytes,
    *,
    filename: str,
    purpose: str,
    content_type: str,
    api_key_id: int | None,
    bounded: bool = True,
) -> StoredFile:
    """Keep `content` in the `files` storage under the tenant's folder. Refuses an
    empty file, and when `bounded` (what tenants upload; not the files the platform
    writes, such as a batch's output) one over settings.INGESTION_MAX_FILE_BYTES
    (413), before anything is stored."""
    if purpose not in FilePurpose.values:
        raise IngestionInputError(f"purpose must be one of {', '.join(FilePurpose.values)}", "purpose")
    filename = (filename or "").strip().replace("\\", "/").rsplit("/", 1)[-1][:255]
    if not filename:
        raise IngestionInputError("a file needs a name", "file")
    upload = ContentFile(content) if isinstance(content, bytes) else content
    digest, size = file_digest(upload, settings.INGESTION_MAX_FILE_BYTES if bounded else None)
    if size == 0:
        raise IngestionInputError("the file is empty", "file")
    stored = StoredFile(
        filename=filename,
        purpose=purpose,
        bytes=size,
        content_type=(content_type or "")[:200],
        sha256=digest,
        api_key_id=api_key_id,
    )
    upload.seek(0)
    stored.content.save(stored.id, upload, save=False)
    try:
        stored.save(force_insert=True)
    except BaseException:
        stored.content.storage.delete(stored.content.name)
        raise
    return stored


def file_digest(upload: File[Any], limit: int | None) -> tuple[str, int]:
    """(SHA-256, size) of `upload`, read in blocks; refused once over `limit` bytes."""
    if limit is not None and upload.size is not None and upload.size > limit:
        raise file_too_large(limit)
    digest = hashlib.sha256()
    size = 0
    upload.seek(0)
    for block in upload.chunks(HASH_BLOCK_BYTES):
        size += len(block)
        if limit is not None and size > limit:
            raise file_too_large(limit)
        digest.update(block)
    return digest.hexdigest(), size


def file_too_large(limit: int) -> IngestionInputError:
    return IngestionInputError(
        f"the file is over the limit of {limit} bytes", "file", code="file_too_large", status=413
    )


def delete_file(stored_file: StoredFile) -> None:
    """Delete the file and its bytes. Documents made from it keep their chunks (their
    `file` becomes null); the bytes go only once the row's deletion is committed."""
    name = stored_file.content.name
    storage = stored_file.content.storage
    stored_file.delete()
    transaction.on_commit(lambda: storage.delete(name))


def create_collection(
    *,
    name: str,
    embedding_model: str | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    search_config: str | None = None,
    description: str = "",
    metadata: dict[str, Any] | None = None,
    api_key_id: int | None,
) -> Collection:
    """A new, empty collection. Its embedding model must be an enabled registry model
    that supports embeddings; chunking and the text search configuration are fixed
    for the collection's life (its chunks are all made the same way)."""
    model = embedding_model or settings.INGESTION_EMBEDDING_MODEL
    check_embedding_model(model)
    tokens = settings.INGESTION_CHUNK_TOKENS if chunk_tokens is None else chunk_tokens
    overlap = settings.INGESTION_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap
    check_chunking(tokens, overlap)
    config = search_config or settings.INGESTION_SEARCH_CONFIG
    check_search_config(config)
    return Collection.objects.create(
        name=check_name(name),
        description=description or "",
        embedding_model=model,
        chunk_tokens=tokens,
        chunk_overlap=overlap,
        search_config=config,
        metadata=check_metadata(metadata),
        api_key_id=api_key_id,
    )


def update_collection(
    collection: Collection,
    *,
    name: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Collection:
    """Change what describes a collection (never how its chunks are made)."""
    fields = ["updated_at"]
    if name is not None:
        collection.name = check_name(name)
        fields.append("name")
    if description is not None:
        collection.description = description
        fields.append("description")
    if metadata is not None:
        collection.metadata = check_metadata(metadata)
        fields.append("metadata")
    collection.save(update_fields=fields)
    return collection


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise IngestionInputError("a collection needs a name", "name")
    if len(name) > 200:
        raise IngestionInputError("name: at most 200 characters", "name")
    return name


def check_embedding_model(model_id: str) -> None:
    model = load_catalog().resolve(model_id)
    if model is None:
        raise IngestionInputError(
            f"no enabled model named {model_id!r}", "embedding_model", code="model_not_found"
        )
    if not model.supports_embeddings:
        raise IngestionInputError(f"{model_id} does not make embeddings", "embedding_model")


def check_chunking(tokens: int, overlap: int) -> None:
    if not settings.INGESTION_MIN_CHUNK_TOKENS <= tokens <= settings.INGESTION_MAX_CHUNK_TOKENS:
        raise IngestionInputError(
            f"chunk_tokens must be between {settings.INGESTION_MIN_CHUNK_TOKENS} "
            f"and {settings.INGESTION_MAX_CHUNK_TOKENS}",
            "chunk_tokens",
        )
    if not 0 <= overlap < tokens:
        raise IngestionInputError(
            "chunk_overlap must be at least 0 and less than chunk_tokens", "chunk_overlap"
        )


def check_search_config(config: str) -> None:
    """A text search configuration PostgreSQL knows (`english`, `simple`, ...)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_catalog.pg_ts_config WHERE cfgname = %s", [config])
        if cursor.fetchone() is None:
            raise IngestionInputError(
                f"{config!r} is not a PostgreSQL text search configuration", "search_config"
            )


def check_metadata(metadata: dict[str, Any] | None, param: str = "metadata") -> dict[str, Any]:
    """Flat attributes search filters can match (like OpenAI's file attributes): at most
    16 keys, values strings, numbers or booleans."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise IngestionInputError("metadata must be an object", param)
    if len(metadata) > METADATA_MAX_KEYS:
        raise IngestionInputError(f"metadata: at most {METADATA_MAX_KEYS} keys", param)
    for key, value in metadata.items():
        if not isinstance(key, str) or not 0 < len(key) <= METADATA_KEY_MAX_CHARACTERS:
            raise IngestionInputError(f"metadata keys are 1-{METADATA_KEY_MAX_CHARACTERS} characters", param)
        if isinstance(value, str):
            if len(value) > METADATA_VALUE_MAX_CHARACTERS:
                raise IngestionInputError(
                    f"metadata.{key}: at most {METADATA_VALUE_MAX_CHARACTERS} characters", param
                )
        elif not isinstance(value, (bool, int, float)):
            raise IngestionInputError(f"metadata.{key} must be a string, a number or a boolean", param)
    return dict(metadata)


def add_text(
    collection: Collection,
    *,
    text: str,
    title: str = "",
    metadata: dict[str, Any] | None = None,
    api_key_id: int | None,
) -> tuple[Document, bool]:
    """A document of raw text (Markdown is kept as such), or the one with the same text."""
    if not isinstance(text, str) or not text.strip():
        raise IngestionInputError("text must not be empty", "text")
    data = text.encode()
    if len(data) > settings.INGESTION_MAX_FILE_BYTES:
        raise IngestionInputError(
            f"text is over the limit of {settings.INGESTION_MAX_FILE_BYTES} bytes",
            "text",
            code="text_too_large",
            status=413,
        )
    return add_document(
        collection,
        content_hash=sha256_hex(data),
        source=DocumentSource.TEXT,
        text=text,
        title=title,
        metadata=metadata,
        api_key_id=api_key_id,
        bytes=len(data),
        content_type="text/markdown",
    )


def add_file(
    collection: Collection,
    stored_file: StoredFile,
    *,
    title: str = "",
    metadata: dict[str, Any] | None = None,
    api_key_id: int | None,
) -> tuple[Document, bool]:
    """A document of a stored file, or the one with the same file or the same bytes."""
    existing = Document.objects.filter(collection=collection, file=stored_file).first()
    if existing is not None:
        return existing, False
    return add_document(
        collection,
        content_hash=stored_file.sha256,
        source=DocumentSource.UPLOAD,
        file=stored_file,
        title=title or stored_file.filename,
        metadata=metadata,
        api_key_id=api_key_id,
        bytes=stored_file.bytes,
        content_type=stored_file.content_type,
    )


def add_url(
    collection: Collection,
    *,
    url: str,
    title: str = "",
    metadata: dict[str, Any] | None = None,
    api_key_id: int | None,
) -> tuple[Document, bool]:
    """A document fetched from `url` by the worker (through the SSRF guard), or the
    collection's document of the same URL. Only the URL's form is checked here."""
    from ingestion.fetching import check_fetchable

    url = check_fetchable(url)
    with transaction.atomic():
        locked = Collection.objects.select_for_update().get(pk=collection.pk)
        existing = Document.objects.filter(collection=locked, source=DocumentSource.URL, url=url).first()
        if existing is not None:
            return existing, False
        document = new_document(
            locked,
            source=DocumentSource.URL,
            url=url,
            title=title,
            metadata=metadata,
            api_key_id=api_key_id,
        )
    return document, True


def add_document(
    collection: Collection, *, content_hash: str, metadata: dict[str, Any] | None, **fields: Any
) -> tuple[Document, bool]:
    with transaction.atomic():
        locked = Collection.objects.select_for_update().get(pk=collection.pk)
        existing = Document.objects.filter(collection=locked, content_hash=content_hash).first()
        if existing is not None:
            return existing, False
        document = new_document(locked, content_hash=content_hash, metadata=metadata, **fields)
    return document, True


def new_document(
    collection: Collection, *, metadata: dict[str, Any] | None, title: str, **fields: Any
) -> Document:
    document = Document.objects.create(
        collection=collection,
        title=(title or "")[:500],
        metadata=check_metadata(metadata),
        status=DocumentStatus.QUEUED,
        stream_id=streams.new_stream_id("ingest"),
        **fields,
    )
    announce_queued(document)
    enqueue_ingestion(document.pk)
    return document


def announce_queued(document: Document) -> None:
    """Open the document's new stream with its queued state once the current
    transaction commits, before its task is sent: a client following the stream id
    it was given finds the stream (a stream exists from its first event)."""
    transaction.on_commit(lambda: progress.publish_queued(document))


def enqueue_ingestion(document_id: str) -> None:
    """Send the document's ingestion once the current transaction commits (at once
    outside one). While a degrade level pauses ingestion it stays `queued`, and is
    sent when the level allows it (capacity.tasks.resume_paused_work)."""
    from ingestion.tasks import ingest_document

    if is_paused(PausedWork.INGESTION):
        return

    transaction.on_commit(
        lambda: ingest_document.apply_async(args=[document_id], queue=settings.INGESTION_QUEUE)
    )


def reingest(document: Document) -> Document:
    """Ingest the document's source again (a URL is fetched again). Unchanged content
    ends as a no-op; changed content replaces the chunks in one step. A document being
    ingested is left to that ingestion."""
    with transaction.atomic():
        locked = Document.objects.select_for_update().get(pk=document.pk)
        if locked.status in (DocumentStatus.QUEUED, DocumentStatus.PROCESSING):
            return locked
        locked.status = DocumentStatus.QUEUED
        locked.error = ""
        locked.attempts = 0
        locked.chunks_done = 0
        locked.chunks_total = 0
        locked.heartbeat_at = None
        locked.stream_id = streams.new_stream_id("ingest")
        locked.save(
            update_fields=[
                "status",
                "error",
                "attempts",
                "chunks_done",
                "chunks_total",
                "heartbeat_at",
                "stream_id",
                "updated_at",
            ]
        )
        announce_queued(locked)
        enqueue_ingestion(locked.pk)
    return locked


def delete_document(document: Document) -> None:
    """Delete the document with its chunks (every generation). A task still holding its
    id finds no document and stops."""
    document.delete()


def delete_collection(collection: Collection) -> None:
    """Delete the collection, its documents and their chunks (not the stored files)."""
    collection.delete()
