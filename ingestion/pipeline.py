"""One document's ingestion: read the source, parse, chunk, embed in batches through
the gateway, store, then switch the document to the new chunks.

Promises (ingestion/models.py explains the generations):
- One worker at a time: a session-level PostgreSQL advisory lock per document,
  released by PostgreSQL itself when a worker dies, so a redelivered task
  resumes at once while a duplicate delivery beside a live worker does nothing.
- Resumable: generation N+1 is written batch by batch, each batch in its own
  transaction; a resumed ingestion keeps the stored positions whose text is
  unchanged and embeds only the rest (no duplicate chunk, no double spend).
- Atomic switch: the generation flips and the old chunks go in one transaction.
- Same bytes as the current generation: nothing is parsed, embedded or written.
- A failure (unreadable source, refused embedding) fails this document only,
  with its reason in `error`, and keeps the generation searches read.

Embeddings go through the gateway in process (the tenant's limits, budget and
usage ledger apply), attributed to the API key that added the document.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from aiaas.observability.metrics import INGESTION_DOCUMENTS, series
from gateway.errors import GatewayError
from ingestion import progress
from ingestion.chunking import ChunkText, chunk
from ingestion.fetching import FetchError, fetch, fetch_policy
from ingestion.models import Chunk, Collection, Document, DocumentSource, DocumentStatus
from ingestion.parsing import ParseError, parse
from ingestion.runtime import runtime
from tenants.context import current_schema_name
from tenants.models import ApiKey
from tenants.selectors import usable_api_key_by_id

logger = logging.getLogger(__name__)

# The first key of the two-key advisory lock: ingestion's own namespace.
ADVISORY_LOCK_NAMESPACE = 1_405_001
ERROR_MAX_CHARACTERS = 2000
# Gateway errors worth another try: rate limits and upstream failures, not a spent budget
# (the gateway's own limits name the budget in the code and say insufficient_quota in the type).
NOT_RETRYABLE_CODES = frozenset({"budget_exhausted", "insufficient_quota"})

INSERT_SQL = (
    "INSERT INTO ingestion_chunk (document_id, collection_id, generation, position, text, heading, page, "
    "token_count, embedding, dimensions, search_vector) VALUES {rows} "
    "ON CONFLICT (document_id, generation, position) DO NOTHING"
)
INSERT_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s::vector, %s, to_tsvector(%s::regconfig, %s))"


class IngestionFailedError(Exception):
    """The document cannot be ingested; the message is its `error`."""


class DocumentGoneError(Exception):
    """The document was deleted while it was being ingested."""


@dataclass(frozen=True, slots=True)
class Source:
    data: bytes
    content_type: str
    filename: str


def ingest(document_id: str) -> None:
    """Ingest the document if it is queued or processing and no live worker holds it."""
    with document_lock(document_id) as locked:
        if not locked:
            return
        document = claim(document_id)
        if document is None:
            return
        try:
            run(document)
        except IngestionFailedError as error:
            fail(document.pk, str(error))
        except DocumentGoneError:
            logger.info("ingestion: %s was deleted while it was ingested", document_id)


@contextmanager
def document_lock(document_id: str) -> Iterator[bool]:
    key = zlib.crc32(f"{current_schema_name()}:{document_id}".encode()) - 2**31
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_LOCK_NAMESPACE, key])
        locked = bool(cursor.fetchone()[0])
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_LOCK_NAMESPACE, key])


def claim(document_id: str) -> Document | None:
    """The document, now `processing`, if it was queued or processing (a delivery after
    it ended, or after it was deleted, finds nothing to do)."""
    claimed = Document.objects.filter(
        pk=document_id, status__in=[DocumentStatus.QUEUED, DocumentStatus.PROCESSING]
    ).update(status=DocumentStatus.PROCESSING, attempts=F("attempts") + 1, heartbeat_at=timezone.now())
    if not claimed:
        return None
    document = Document.objects.select_related("collection", "file").get(pk=document_id)
    if document.attempts > settings.INGESTION_MAX_ATTEMPTS:
        fail(document.pk, f"ingestion did not finish after {settings.INGESTION_MAX_ATTEMPTS} attempts")
        return None
    progress.publish(document)
    return document


def run(document: Document) -> None:
    source = read_source(document)
    content_hash = hashlib.sha256(source.data).hexdigest()
    if document.generation > 0 and content_hash == document.content_hash:
        finish_unchanged(document)
        return
    try:
        parsed = parse(source.data, content_type=source.content_type, filename=source.filename)
    except ParseError as error:
        raise IngestionFailedError(str(error)) from None
    collection = document.collection
    chunks = chunk(parsed, capacity=collection.chunk_tokens, overlap=collection.chunk_overlap)
    if not chunks:
        raise IngestionFailedError("the document has no text to index")
    generation = document.generation + 1
    pending = unstored(document, generation, chunks)
    set_progress(document, total=len(chunks), done=len(chunks) - len(pending))
    api_key = ingestion_api_key(document)
    for batch in batches(pending, settings.INGESTION_EMBEDDING_BATCH):
        vectors = embed(document, collection, api_key, batch)
        store(document, collection, generation, batch, vectors)
    switch(document, generation, content_hash, title=parsed.title)


def read_source(document: Document) -> Source:
    if document.source == DocumentSource.TEXT:
        return Source(document.text.encode(), "text/markdown", "")
    if document.source == DocumentSource.UPLOAD:
        if document.file is None:
            raise IngestionFailedError("the document's file was deleted")
        try:
            with document.file.content.open("rb") as handle:
                data = handle.read()
        except OSError as error:
            raise IngestionFailedError(f"the document's file cannot be read: {error}") from None
        return Source(data, document.file.content_type, document.file.filename)
    try:
        fetched = runtime().run(fetch(document.url, fetch_policy()))
    except FetchError as error:
        raise IngestionFailedError(str(error)) from None
    return Source(fetched.data, fetched.content_type, fetched.url.rsplit("/", 1)[-1])


def unstored(document: Document, generation: int, chunks: list[ChunkText]) -> list[ChunkText]:
    """The chunks a previous attempt did not store. Stored text that differs (a URL that
    changed between attempts) means the partial generation is discarded."""
    stored = dict(
        Chunk.objects.filter(document=document, generation=generation).values_list("position", "text")
    )
    if any(position >= len(chunks) or chunks[position].text != text for position, text in stored.items()):
        Chunk.objects.filter(document=document, generation=generation).delete()
        return chunks
    return [piece for piece in chunks if piece.position not in stored]


def batches(chunks: Sequence[ChunkText], size: int) -> Iterator[Sequence[ChunkText]]:
    for start in range(0, len(chunks), size):
        yield chunks[start : start + size]


def ingestion_api_key(document: Document) -> ApiKey:
    """The key the document's embeddings are attributed to: the one that added it, if
    it is still usable and belongs to this schema's tenant (fails closed)."""
    api_key = usable_api_key_by_id(document.api_key_id) if document.api_key_id else None
    if api_key is None or api_key.tenant.schema_name != current_schema_name():
        raise IngestionFailedError("the API key that added this document is no longer usable")
    return api_key


def embed(
    document: Document, collection: Collection, api_key: ApiKey, batch: Sequence[ChunkText]
) -> list[list[float]]:
    """The batch's vectors, retrying rate limits and upstream failures with exponential
    backoff (or the Retry-After the gateway gives)."""
    body = {"model": collection.embedding_model, "input": [piece.text for piece in batch]}
    for attempt in range(settings.INGESTION_EMBEDDING_RETRIES + 1):
        rt = runtime()
        try:
            result = rt.run(rt.gateway.embeddings(api_key, body, f"req_{uuid.uuid4().hex}"))
        except GatewayError as error:
            if not retryable(error) or attempt == settings.INGESTION_EMBEDDING_RETRIES:
                raise IngestionFailedError(
                    f"embedding failed ({error.status} {error.error_type}): {error.message}"
                ) from None
            touch(document)
            time.sleep(backoff_seconds(attempt, error.retry_after))
            continue
        Document.objects.filter(pk=document.pk).update(
            usage_prompt_tokens=F("usage_prompt_tokens") + result.prompt_tokens,
            usage_cost_usd=F("usage_cost_usd") + result.cost_usd,
        )
        check_dimensions(collection, result.vectors)
        return result.vectors
    raise AssertionError("unreachable")


def retryable(error: GatewayError) -> bool:
    return (error.status == 429 or error.status >= 500) and NOT_RETRYABLE_CODES.isdisjoint(
        {error.type, error.error_type}
    )


def backoff_seconds(attempt: int, retry_after: float | None) -> float:
    delay = settings.INGESTION_RETRY_BASE_SECONDS * 2**attempt
    if retry_after is not None:
        delay = max(delay, retry_after)
    return float(min(delay, settings.INGESTION_RETRY_MAX_SECONDS))


def check_dimensions(collection: Collection, vectors: list[list[float]]) -> None:
    """Every chunk of a collection has the size of its first vector."""
    size = len(vectors[0])
    if collection.dimensions is None:
        Collection.objects.filter(pk=collection.pk, dimensions__isnull=True).update(dimensions=size)
        collection.refresh_from_db(fields=["dimensions"])
    if collection.dimensions != size or any(len(vector) != size for vector in vectors):
        raise IngestionFailedError(
            f"{collection.embedding_model} made vectors of {size} dimensions; "
            f"the collection's have {collection.dimensions}"
        )


def store(
    document: Document,
    collection: Collection,
    generation: int,
    batch: Sequence[ChunkText],
    vectors: list[list[float]],
) -> None:
    """Insert a batch of generation `generation` and count it, in one transaction."""
    params: list[Any] = []
    for piece, vector in zip(batch, vectors, strict=True):
        params += [
            document.pk,
            collection.pk,
            generation,
            piece.position,
            piece.text,
            piece.heading[:500],
            piece.page,
            piece.token_count,
            "[" + ",".join(repr(float(value)) for value in vector) + "]",
            len(vector),
            collection.search_config,
            piece.text,
        ]
    with transaction.atomic():
        locked = lock_document(document.pk)
        with connection.cursor() as cursor:
            cursor.execute(INSERT_SQL.format(rows=", ".join([INSERT_ROW] * len(batch))), params)
        locked.chunks_done = Chunk.objects.filter(document=locked, generation=generation).count()
        locked.heartbeat_at = timezone.now()
        locked.save(update_fields=["chunks_done", "heartbeat_at", "updated_at"])
    document.chunks_done = locked.chunks_done
    progress.publish(locked)


def lock_document(document_id: str) -> Document:
    locked = Document.objects.select_for_update().filter(pk=document_id).first()
    if locked is None:
        raise DocumentGoneError(document_id)
    return locked


def set_progress(document: Document, *, total: int, done: int) -> None:
    Document.objects.filter(pk=document.pk).update(
        chunks_total=total, chunks_done=done, heartbeat_at=timezone.now(), updated_at=timezone.now()
    )
    document.chunks_total, document.chunks_done = total, done
    progress.publish(document)


def touch(document: Document) -> None:
    Document.objects.filter(pk=document.pk).update(heartbeat_at=timezone.now())


def finished(document: Document) -> None:
    """A document's ingestion ended (ready or failed): its stream is told, the metrics count it."""
    series(INGESTION_DOCUMENTS, document.status).inc()
    progress.publish(document)


def switch(document: Document, generation: int, content_hash: str, *, title: str) -> None:
    """Make `generation` the one searches read and drop the others, in one transaction."""
    with transaction.atomic():
        locked = lock_document(document.pk)
        Chunk.objects.filter(document=locked).exclude(generation=generation).delete()
        totals = Chunk.objects.filter(document=locked).aggregate(count=Count("pk"), tokens=Sum("token_count"))
        locked.chunk_count = totals["count"]
        locked.token_count = totals["tokens"] or 0
        locked.generation = generation
        locked.content_hash = content_hash
        locked.status = DocumentStatus.READY
        locked.error = ""
        locked.chunks_done = locked.chunks_total = locked.chunk_count
        locked.ingested_at = timezone.now()
        locked.heartbeat_at = None
        if not locked.title and title:
            locked.title = title[:500]
        locked.save()
    finished(locked)


def finish_unchanged(document: Document) -> None:
    """The source is the current generation's: drop any partial newer one and end `ready`."""
    with transaction.atomic():
        locked = lock_document(document.pk)
        Chunk.objects.filter(document=locked, generation__gt=locked.generation).delete()
        locked.status = DocumentStatus.READY
        locked.error = ""
        locked.chunks_done = locked.chunks_total = locked.chunk_count
        locked.heartbeat_at = None
        locked.save(
            update_fields=["status", "error", "chunks_done", "chunks_total", "heartbeat_at", "updated_at"]
        )
    finished(locked)


def fail(document_id: str, error: str) -> None:
    """End the ingestion `failed` with `error`; the generation searches read stays."""
    with transaction.atomic():
        locked = Document.objects.select_for_update().filter(pk=document_id).first()
        if locked is None:
            return
        Chunk.objects.filter(document=locked, generation__gt=locked.generation).delete()
        locked.status = DocumentStatus.FAILED
        locked.error = error[:ERROR_MAX_CHARACTERS]
        locked.heartbeat_at = None
        locked.save(update_fields=["status", "error", "heartbeat_at", "updated_at"])
    finished(locked)
