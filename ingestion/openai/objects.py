"""OpenAI's objects, rendered from ours: a StoredFile is a `file`, a Collection a
`vector_store`, a Document made from a file a `vector_store.file`.

Our document statuses map onto OpenAI's: queued and processing are
`in_progress`, ready is `completed`, failed is `failed` (with `last_error`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingestion.models import Collection, Document, DocumentStatus, StoredFile

FILE_STATUS = {
    DocumentStatus.QUEUED: "in_progress",
    DocumentStatus.PROCESSING: "in_progress",
    DocumentStatus.READY: "completed",
    DocumentStatus.FAILED: "failed",
}
OPENAI_STATUSES = ("in_progress", "completed", "failed", "cancelled")


def timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def statuses_for(openai_status: str) -> list[str]:
    """Our document statuses that read as `openai_status`."""
    return [ours for ours, theirs in FILE_STATUS.items() if theirs == openai_status]


def file_object(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": stored.bytes,
        "created_at": timestamp(stored.created_at),
        "expires_at": None,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "status_details": None,
    }


@dataclass(frozen=True, slots=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0

    @classmethod
    def of(cls, by_status: dict[str, int]) -> FileCounts:
        counts = dict.fromkeys(OPENAI_STATUSES, 0)
        for status, count in by_status.items():
            counts[FILE_STATUS[DocumentStatus(status)]] += count
        return cls(counts["in_progress"], counts["completed"], counts["failed"])

    def as_dict(self) -> dict[str, int]:
        total = self.in_progress + self.completed + self.failed
        return {
            "in_progress": self.in_progress,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": 0,
            "total": total,
        }


def vector_store_object(collection: Collection, counts: FileCounts, usage_bytes: int) -> dict[str, Any]:
    return {
        "id": collection.id,
        "object": "vector_store",
        "created_at": timestamp(collection.created_at),
        "name": collection.name,
        "description": collection.description or None,
        "usage_bytes": usage_bytes,
        "file_counts": counts.as_dict(),
        "status": "in_progress" if counts.in_progress else "completed",
        "expires_after": None,
        "expires_at": None,
        "last_active_at": timestamp(collection.updated_at),
        "metadata": collection.metadata,
    }


def chunking_strategy(collection: Collection) -> dict[str, Any]:
    return {
        "type": "static",
        "static": {
            "max_chunk_size_tokens": collection.chunk_tokens,
            "chunk_overlap_tokens": collection.chunk_overlap,
        },
    }


def last_error(document: Document) -> dict[str, str] | None:
    """OpenAI's codes say whose fault a failure was; the pipeline's message says which
    (ingestion/pipeline.py: embedding failures, parsing's "unsupported file type")."""
    if document.status != DocumentStatus.FAILED:
        return None
    message = document.error or "The file could not be ingested."
    if message.startswith("embedding failed"):
        code = "server_error"
    elif message.startswith("unsupported file type"):
        code = "unsupported_file"
    else:
        code = "invalid_file"
    return {"code": code, "message": message}


def vector_store_file_object(document: Document) -> dict[str, Any]:
    return {
        "id": document.file_id,
        "object": "vector_store.file",
        "created_at": timestamp(document.created_at),
        "vector_store_id": document.collection_id,
        "status": FILE_STATUS[DocumentStatus(document.status)],
        "last_error": last_error(document),
        "usage_bytes": document.bytes,
        "attributes": document.metadata,
        "chunking_strategy": chunking_strategy(document.collection),
    }


def deleted(object_id: str, object_type: str) -> dict[str, Any]:
    return {"id": object_id, "object": object_type, "deleted": True}
