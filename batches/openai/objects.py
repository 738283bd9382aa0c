"""OpenAI's batch object, rendered from ours."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from batches.models import Batch


def timestamp(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def batch_object(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "model": None,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file_id or None,
        "error_file_id": batch.error_file_id or None,
        "created_at": timestamp(batch.created_at),
        "in_progress_at": timestamp(batch.in_progress_at),
        "expires_at": timestamp(batch.expires_at),
        "finalizing_at": timestamp(batch.finalizing_at),
        "completed_at": timestamp(batch.completed_at),
        "failed_at": timestamp(batch.failed_at),
        "expired_at": timestamp(batch.expired_at),
        "cancelling_at": timestamp(batch.cancelling_at),
        "cancelled_at": timestamp(batch.cancelled_at),
        "request_counts": {"total": batch.total, "completed": batch.completed, "failed": batch.failed},
        "metadata": batch.metadata,
    }
