"""A batch's end: its output and error files, written as OpenAI writes them, and its
final status, in one transaction under a lock on the batch row, so a batch is
finished once even if two deliveries reach this point.

Output lines (`output_file_id`) are the lines answered 200; the error file
(`error_file_id`) holds the others: an answer with status_code >= 400, or
`response: null` and an `error` (a spent budget, an expired window). Both are in
line order, as JSONL, stored as purpose `batch_output` files.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from batches.models import ACTIVE_STATUSES, Batch, BatchLine, BatchStatus, LineStatus
from ingestion.models import FilePurpose, StoredFile
from ingestion.services import store_file

# The timestamp each final status sets.
STAMPS = {
    BatchStatus.COMPLETED: "completed_at",
    BatchStatus.CANCELLED: "cancelled_at",
    BatchStatus.EXPIRED: "expired_at",
}


def finish(batch_id: str, status: BatchStatus) -> None:
    if status == BatchStatus.COMPLETED:
        Batch.objects.filter(pk=batch_id, status=BatchStatus.IN_PROGRESS).update(
            status=BatchStatus.FINALIZING, finalizing_at=timezone.now()
        )
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id, status__in=ACTIVE_STATUSES).first()
        if batch is None:
            return
        lines = batch.lines.exclude(status=LineStatus.PENDING).order_by("line")
        output = write(batch, lines.filter(status=LineStatus.SUCCEEDED), "output")
        errors = write(batch, lines.filter(status=LineStatus.FAILED), "error")
        batch.output_file_id = output.id if output else ""
        batch.error_file_id = errors.id if errors else ""
        batch.status = status
        setattr(batch, STAMPS[status], timezone.now())
        batch.save(update_fields=["output_file_id", "error_file_id", "status", STAMPS[status]])


def write(batch: Batch, lines: Any, kind: str) -> StoredFile | None:
    """The lines as a JSONL file, or None when there are none (OpenAI leaves the id null)."""
    content = b"".join(
        json.dumps(output_line(line), separators=(",", ":")).encode() + b"\n" for line in lines
    )
    if not content:
        return None
    return store_file(
        content,
        filename=f"{batch.id}_{kind}.jsonl",
        purpose=FilePurpose.BATCH_OUTPUT,
        content_type="application/jsonl",
        api_key_id=batch.api_key_id,
        bounded=False,  # answers outgrow their input; the input file was bounded
    )


def output_line(line: BatchLine) -> dict[str, Any]:
    return {"id": line.output_id, "custom_id": line.custom_id, "response": line.response, "error": line.error}
