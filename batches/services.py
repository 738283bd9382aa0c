"""Writes: creating and cancelling batches.

A batch is created from a purpose=batch file, read and checked at once: a file
with any invalid line makes a batch `failed` with OpenAI's `errors` and runs
nothing; a valid one is stored line by line, `validating`, and its run is
enqueued once the transaction commits (batches/tasks.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from batches.input_file import read_lines
from batches.models import Batch, BatchLine, BatchStatus
from ingestion.models import FilePurpose, StoredFile

COMPLETION_WINDOW = timedelta(hours=24)
CANCELLABLE = (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS)


class BatchInputError(ValueError):
    """Input the caller can fix: a 4xx naming the parameter."""

    def __init__(
        self, message: str, param: str | None = None, *, code: str = "invalid_value", status: int = 400
    ):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def create_batch(
    *, input_file_id: str, endpoint: str, metadata: dict[str, Any] | None, api_key_id: int
) -> Batch:
    """A batch of the file's requests, attributed to `api_key_id`; `failed` (with its
    errors) when the file is invalid."""
    stored = StoredFile.objects.filter(pk=input_file_id).first()
    if stored is None:
        raise BatchInputError("No such file.", "input_file_id", code="not_found", status=404)
    if stored.purpose != FilePurpose.BATCH:
        raise BatchInputError("The input file must be uploaded with purpose `batch`.", "input_file_id")
    with stored.content.open("rb") as file:
        lines, errors = read_lines(file.read(), endpoint)
    now = timezone.now()
    with transaction.atomic():
        batch = Batch.objects.create(
            endpoint=endpoint,
            input_file_id=stored.id,
            metadata=metadata,
            api_key_id=api_key_id,
            expires_at=now + COMPLETION_WINDOW,
        )
        if errors:
            batch.status, batch.failed_at = BatchStatus.FAILED, now
            batch.errors = [error.as_dict() for error in errors]
            batch.save(update_fields=["status", "failed_at", "errors"])
            return batch
        BatchLine.objects.bulk_create(
            [
                BatchLine(batch=batch, line=line.line, custom_id=line.custom_id, body=line.body)
                for line in lines
            ],
            batch_size=1000,
        )
        batch.total = len(lines)
        batch.save(update_fields=["total"])
        enqueue_batch(batch.id)
    return batch


def cancel_batch(batch: Batch) -> Batch:
    """Ask the batch to stop: `cancelling` until its worker has finished the lines in
    flight and written what was done (then `cancelled`). A batch already over is left
    as it is."""
    cancelling = Batch.objects.filter(pk=batch.pk, status__in=CANCELLABLE).update(
        status=BatchStatus.CANCELLING, cancelling_at=timezone.now()
    )
    if cancelling:
        enqueue_batch(batch.pk)  # a batch no worker holds yet is ended by this delivery
    batch.refresh_from_db()
    return batch


def enqueue_batch(batch_id: str) -> None:
    """Send the batch's run once the current transaction commits (at once outside one)."""
    from batches.tasks import run_batch

    transaction.on_commit(lambda: run_batch.apply_async(args=[batch_id], queue=settings.BATCHES_QUEUE))
