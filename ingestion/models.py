"""Knowledge: stored files, collections, their documents and chunks. In the tenant's
schema (TENANT_APPS): every byte and vector here is the tenant's content.

A collection is also an OpenAI vector store (`vs_...`), a stored file an OpenAI
file (`file-...`); the ids are the same on /api and /v1.

A document's chunks are written in generations: a (re-)ingestion writes a new
generation batch by batch (a redelivered task skips the positions already
stored), and only once all of it is stored does the document switch to it and
drop the old one, in one transaction. Searches read `Document.generation`
only, so a reader never sees half of a new version or a mix of two.
"""

from __future__ import annotations

import secrets

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.files.storage import Storage, storages
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django_tenants.utils import get_public_schema_name
from pgvector.django import VectorField

from tenants.context import current_schema_name

# Dimensions chunk vectors may have: each has a partial HNSW index (migration
# 0001). pgvector 0.6 indexes up to 2,000 dimensions; models with more (e.g.
# text-embedding-3-large) are asked for 1,536 through `dimensions`.
INDEXED_DIMENSIONS = (256, 384, 512, 768, 1024, 1536)


def new_id(prefix: str) -> str:
    """An unguessable public id: `vs_...`, `doc_...`, `file-...` (OpenAI's file ids use a dash)."""
    return f"{prefix}{secrets.token_hex(12)}"


def new_collection_id() -> str:
    return new_id("vs_")


def new_document_id() -> str:
    return new_id("doc_")


def new_file_id() -> str:
    return new_id("file-")


def files_storage() -> Storage:
    """The `files` storage (settings.STORAGES): local disk, or S3 when configured."""
    return storages["files"]


def file_path(instance: StoredFile, filename: str) -> str:
    """Files of every tenant share a storage: the schema name keeps them apart (and
    there is no tenant-less place to put one)."""
    schema = current_schema_name()
    if schema == get_public_schema_name():
        raise RuntimeError("a stored file needs a tenant's schema")
    return f"tenants/{schema}/files/{instance.id}"


class FilePurpose(models.TextChoices):
    ASSISTANTS = "assistants"
    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"
    USER_DATA = "user_data"
    FINE_TUNE = "fine-tune"
    VISION = "vision"
    EVALS = "evals"


class StoredFile(models.Model):
    """An uploaded file (OpenAI's file object), kept in the `files` storage."""

    id = models.CharField(primary_key=True, max_length=40, default=new_file_id, editable=False)
    filename = models.CharField(max_length=255)
    purpose = models.CharField(max_length=20, choices=FilePurpose.choices)
    content = models.FileField(upload_to=file_path, storage=files_storage, max_length=300)
    bytes = models.BigIntegerField()
    content_type = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64)
    api_key_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["purpose", "-created_at"], name="ingestion_file_purpose")]

    def __str__(self) -> str:
        return f"{self.id} {self.filename}"


class Collection(models.Model):
    """A searchable set of documents embedded with one model (an OpenAI vector store)."""

    id = models.CharField(primary_key=True, max_length=40, default=new_collection_id, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    embedding_model = models.CharField(max_length=200, help_text="A registry model that supports embeddings.")
    # Set by the first embedding: every chunk of a collection has this many dimensions.
    dimensions = models.PositiveSmallIntegerField(null=True, blank=True)
    chunk_tokens = models.PositiveIntegerField(
        default=400, validators=[MinValueValidator(50), MaxValueValidator(4096)]
    )
    chunk_overlap = models.PositiveIntegerField(default=60, validators=[MaxValueValidator(2048)])
    # The PostgreSQL text search configuration of keyword search ("english", "simple", ...).
    search_config = models.CharField(max_length=63, default="english")
    metadata = models.JSONField(default=dict, blank=True)
    api_key_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return self.name


class DocumentSource(models.TextChoices):
    UPLOAD = "upload"
    URL = "url"
    TEXT = "text"


class DocumentStatus(models.TextChoices):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class Document(models.Model):
    """One source in a collection: an uploaded file, a URL or raw text."""

    id = models.CharField(primary_key=True, max_length=40, default=new_document_id, editable=False)
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=10, choices=DocumentSource.choices)
    url = models.URLField(max_length=2000, blank=True)
    file = models.ForeignKey(
        StoredFile, on_delete=models.SET_NULL, null=True, blank=True, related_name="documents"
    )
    text = models.TextField(blank=True, help_text="The raw text of a `text` source.")
    content_type = models.CharField(max_length=200, blank=True)
    # SHA-256 of the source's bytes as last ingested (blank until then).
    content_hash = models.CharField(max_length=64, blank=True)
    bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=20, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED)
    error = models.TextField(blank=True)
    # Progress of the current ingestion, in chunks.
    chunks_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    # Totals of the generation searches read.
    chunk_count = models.PositiveIntegerField(default=0)
    token_count = models.PositiveIntegerField(default=0)
    # The generation searches read (0: none yet); ingestion writes generation + 1.
    generation = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Touched by the worker as it goes: the sweeper re-queues a document whose heartbeat stopped.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Attributes search filters match.")
    api_key_id = models.BigIntegerField(null=True, blank=True)
    stream_id = models.CharField(max_length=100, blank=True)
    usage_prompt_tokens = models.PositiveBigIntegerField(default=0)
    usage_cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(fields=["collection", "-created_at"], name="ingestion_doc_collection"),
            models.Index(fields=["status", "heartbeat_at"], name="ingestion_doc_status"),
            models.Index(fields=["collection", "content_hash"], name="ingestion_doc_hash"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "file"],
                condition=models.Q(file__isnull=False),
                name="ingestion_doc_file_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.id


class Chunk(models.Model):
    """A passage of a document at one generation, with its vector and keyword index."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="chunks")
    generation = models.PositiveIntegerField()
    position = models.PositiveIntegerField(help_text="0-based order in the document.")
    text = models.TextField()
    heading = models.CharField(max_length=500, blank=True, help_text="The section heading path, if any.")
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField()
    # No fixed dimension here: a partial HNSW index per INDEXED_DIMENSIONS value.
    embedding = VectorField()
    dimensions = models.PositiveSmallIntegerField()
    search_vector = SearchVectorField()

    class Meta:
        ordering = ["document", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "generation", "position"], name="ingestion_chunk_position_unique"
            ),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="ingestion_chunk_search"),
            models.Index(fields=["collection", "document"], name="ingestion_chunk_collection"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"
