"""A document's ingestion progress on its realtime stream (`/ws/v1/streams/<stream_id>`).

Each ingestion has a stream of its own (Document.stream_id, new on re-ingestion):
its `queued` state as the document is added (the stream exists as soon as its id
is handed out), `ingestion.progress` events as batches are stored, then one final
`ingestion.ready` or `ingestion.failed`. Progress is advisory: the document row
is the truth, so a failed publish is logged and never fails the ingestion.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from ingestion.models import Document, DocumentStatus
from ingestion.runtime import runtime
from realtime import streams
from tenants.context import current_schema_name

logger = logging.getLogger(__name__)

FINAL_TYPES = {DocumentStatus.READY: "ingestion.ready", DocumentStatus.FAILED: "ingestion.failed"}


def event_of(document: Document) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": FINAL_TYPES.get(DocumentStatus(document.status), "ingestion.progress"),
        "document_id": document.pk,
        "status": document.status,
        "chunks_done": document.chunks_done,
        "chunks_total": document.chunks_total,
    }
    if document.status == DocumentStatus.FAILED:
        event["error"] = document.error[:1000]
    return event


def publish(document: Document) -> None:
    """Send the document's state; a `ready` or `failed` one ends its stream."""
    if not document.stream_id:
        return
    final = document.status in FINAL_TYPES
    try:
        # On the worker thread's own loop and clients: the synchronous `publish` starts
        # a loop per call (about 5 ms of the ~100 ms a small document takes).
        runtime().run(
            streams.apublish(current_schema_name(), document.stream_id, event_of(document), final=final)
        )
    except streams.StreamClosedError:
        pass  # a redelivered task after the final event: nothing more to say
    except (RedisError, ValueError):
        logger.warning("ingestion: progress of %s not published", document.pk, exc_info=True)


def publish_queued(document: Document) -> None:
    """The stream's first event, as the document is queued: a socket on a stream with
    no event yet is refused (404), and a document waits long while ingestion is paused.
    Sent once the queuing transaction commits (services.announce_queued)."""
    try:
        streams.publish(current_schema_name(), document.stream_id, event_of(document))
    except (RedisError, ValueError):
        logger.warning("ingestion: the queued event of %s not published", document.pk, exc_info=True)
