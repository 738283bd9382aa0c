"""Batches (OpenAI's batch object) and their lines, in the tenant's schema: a line's
request body and its answer are the tenant's content.

A line is `pending` until its answer is recorded (`succeeded` or `failed`); the
batch's counts are counted from its lines, so a line counts only once its
result is stored, and a resumed batch calls only its pending lines.
"""

from __future__ import annotations

import hashlib
import secrets

from django.db import models


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(12)}"


class BatchStatus(models.TextChoices):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


# Statuses a worker still has work in: the runner and the sweeper pick these up.
ACTIVE_STATUSES = (
    BatchStatus.VALIDATING,
    BatchStatus.IN_PROGRESS,
    BatchStatus.FINALIZING,
    BatchStatus.CANCELLING,
)


class BatchEndpoint(models.TextChoices):
    CHAT_COMPLETIONS = "/v1/chat/completions"
    EMBEDDINGS = "/v1/embeddings"


class Batch(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_batch_id, editable=False)
    endpoint = models.CharField(max_length=40, choices=BatchEndpoint.choices)
    input_file_id = models.CharField(max_length=40)
    completion_window = models.CharField(max_length=8, default="24h")
    status = models.CharField(max_length=12, choices=BatchStatus.choices, default=BatchStatus.VALIDATING)
    metadata = models.JSONField(null=True, blank=True)
    # OpenAI's `errors.data`: why the input file was refused.
    errors = models.JSONField(null=True, blank=True)
    output_file_id = models.CharField(max_length=40, blank=True)
    error_file_id = models.CharField(max_length=40, blank=True)
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # The key that created the batch: its lines are attributed to it (limits, budget, ledger).
    api_key_id = models.BigIntegerField()
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="batches_status_heartbeat")]

    def __str__(self) -> str:
        return self.id


class LineStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BatchLine(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="lines")
    line = models.PositiveIntegerField(help_text="1-based, as in the input file.")
    custom_id = models.CharField(max_length=512)
    body = models.JSONField()
    status = models.CharField(max_length=10, choices=LineStatus.choices, default=LineStatus.PENDING)
    # OpenAI's output line: `response` {status_code, request_id, body} or `error` {code, message}.
    response = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "line"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "line"], name="batches_line_unique_position"),
            models.UniqueConstraint(fields=["batch", "custom_id"], name="batches_line_unique_custom_id"),
        ]
        indexes = [models.Index(fields=["batch", "status", "line"], name="batches_line_pending")]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.custom_id}"

    @property
    def request_id(self) -> str:
        """The gateway request id of this line, the same on every attempt: the usage
        ledger stores one row per request id, so a line sent again after a worker
        died mid-call is billed once."""
        digest = hashlib.sha256(self.custom_id.encode()).hexdigest()[:24]
        return f"req_{self.batch_id}_{digest}"

    @property
    def output_id(self) -> str:
        """OpenAI's `batch_req_...` id of this line's output, stable across attempts."""
        digest = hashlib.sha256(f"{self.batch_id}:{self.custom_id}".encode()).hexdigest()[:24]
        return f"batch_req_{digest}"
