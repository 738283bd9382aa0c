"""The body of POST /v1/batches, parsed strictly (ingestion/openai/bodies.py's rules):
a value of the wrong JSON type is refused, and each refusal names its parameter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batches.models import BatchEndpoint
from ingestion.openai.bodies import Attributes, body_of, invalid, optional_metadata, text, unsupported

COMPLETION_WINDOWS = ("24h",)
MAX_FILE_ID_LENGTH = 40


@dataclass(frozen=True, slots=True)
class BatchCreate:
    input_file_id: str
    endpoint: str
    metadata: Attributes | None


def batch_create(data: Any) -> BatchCreate:
    body = body_of(
        data,
        "input_file_id",
        "endpoint",
        "completion_window",
        known=("input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"),
    )
    endpoint = text(body, "endpoint", max_length=100)
    if endpoint not in BatchEndpoint.values:
        raise invalid("endpoint", f"must be one of {', '.join(BatchEndpoint.values)}", "unsupported_value")
    if text(body, "completion_window", max_length=8) not in COMPLETION_WINDOWS:
        raise invalid("completion_window", "must be `24h`", "unsupported_value")
    if body.get("output_expires_after") is not None:
        raise unsupported("output_expires_after")
    return BatchCreate(
        input_file_id=text(body, "input_file_id", max_length=MAX_FILE_ID_LENGTH),
        endpoint=endpoint,
        metadata=optional_metadata(body, "metadata", strings_only=True),
    )
