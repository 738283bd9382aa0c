"""Request logging: each /v1 request's prompt and output, stored in its tenant's own schema.

Off by default; a tenant turns it on with `Tenant.request_logging_enabled` and
sets how long rows are kept with `request_log_retention_days` (1-365).

1. The gateway, for a tenant with logging on, calls `queue_request_log` when
   the request is over: one XADD to the Redis stream REQUEST_LOG_STREAM, no
   PostgreSQL write on the request path.
2. `flush_request_logs` (Celery beat, every few seconds) moves entries to
   `RequestLog` rows exactly once per request id, as the usage ledger does
   (the stream queue, aiaas/stream_queue.py): claim stale entries, read new ones, insert with
   `ON CONFLICT (request_id) DO NOTHING`, and only then XACK + XDEL. A flusher
   killed before its insert commits leaves the entries pending for the next
   one; killed after, the next one's insert of the same request ids is a no-op.
   Entries are grouped by schema and each group is inserted inside that
   schema's `schema_context`, so a row can only land in the schema the entry
   names, and only if that schema still belongs to the entry's tenant.
3. `purge_expired_request_logs` (hourly) deletes each tenant's rows older than
   its retention.

Bounds: the request body is stored as JSON of at most MAX_REQUEST_BODY_BYTES;
a longer one is replaced by `{"truncated": true, "original_bytes": N, "head":
"<the start of its JSON text>"}`. The response text keeps at most
MAX_RESPONSE_TEXT_BYTES of UTF-8, the cut ending in TRUNCATION_MARKER. NUL
characters, which PostgreSQL text and jsonb refuse, become U+FFFD.

Content outside the tenant's schema: an entry's prompt and output sit in the
shared Redis only until flushed (seconds). Entries that will not be stored -
unreadable, a tenant or schema gone, logging turned off since, a row
PostgreSQL refuses - are dropped, and only their metadata (request id, tenant,
schema, reason; never content) goes to the capped dead stream, so nothing a
tenant did not agree to keep survives anywhere.
"""

from __future__ import annotations

import logging
import re
import socket
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis
import redis.asyncio
from django.conf import settings
from django.db import DataError, IntegrityError, ProgrammingError, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context
from redis.typing import EncodableT

from aiaas.redis_clients import sync_client
from aiaas.stream_queue import DeadLetter, Entry, StreamQueue, StreamQueueUnavailableError
from request_logs.models import RequestLog
from tenants.models import Tenant

logger = logging.getLogger(__name__)

DEFAULT_STREAM = "request-logs:events"
FORMAT_VERSION = "1"
MAX_REQUEST_BODY_BYTES = 256 * 1024
MAX_RESPONSE_TEXT_BYTES = 256 * 1024
TRUNCATION_MARKER = "\n[truncated: {omitted} of {total} bytes omitted]"
MARKER_RESERVE_BYTES = 64  # TRUNCATION_MARKER with two 20-digit numbers fits
# The dead stream holds metadata of entries that were not stored, for operators; capped, approximately.
DEAD_STREAM_MAX_LENGTH = 10_000
DEAD_LETTER_FIELDS = ("request_id", "tenant_id", "schema_name")  # never the content
PURGE_BATCH_SIZE = 5_000
MAX_ID = 2**63 - 1
# A JSON \u0000 escape: a backslash preceded by an even number of backslashes.
JSON_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


class RequestLogQueueUnavailableError(RuntimeError):
    """The request log entry could not be appended because Redis did not answer.

    The request has already been answered; the caller logs it with the request id.
    """


class MalformedRequestLogError(ValueError):
    """A stream entry that is not a valid request log entry."""


def request_log_stream() -> str:
    return str(getattr(settings, "REQUEST_LOG_STREAM", DEFAULT_STREAM))


def dead_stream_of(stream: str) -> str:
    return f"{stream.removesuffix(':events')}:dead"


def request_log_queue(stream: str | None = None) -> StreamQueue:
    """The request logs' queue; its dead stream keeps metadata only, and a bounded number of it."""
    stream = stream or request_log_stream()
    return StreamQueue(stream, dead_stream_of(stream), dead_max_length=DEAD_STREAM_MAX_LENGTH)


# Queueing (the gateway's side)


async def queue_request_log(
    redis_client: redis.asyncio.Redis,
    *,
    tenant_id: int,
    schema_name: str,
    request_id: str,
    api_key_id: int | None,
    model: str,
    request_body: dict[str, Any],
    response_text: str,
    status: int,
    created_at: datetime,
    stream: str | None = None,
) -> None:
    """Append one request's log entry to the queue: one XADD, bounded in size.

    Call it only for a tenant whose `request_logging_enabled` is on; the
    flusher checks again and drops entries of a tenant that turned it off.
    Raises RequestLogQueueUnavailableError when Redis does not answer.
    """
    fields: dict[str, EncodableT] = {
        "v": FORMAT_VERSION,
        "tenant_id": tenant_id,
        "schema_name": schema_name,
        "request_id": request_id,
        "api_key_id": "" if api_key_id is None else api_key_id,
        "model": model[:200],
        "request_body": bounded_request_body(request_body),
        "response_text": bounded_text(response_text, MAX_RESPONSE_TEXT_BYTES),
        "status": status,
        "created_at": created_at.isoformat(),
    }
    try:
        await request_log_queue(stream).append(redis_client, fields)
    except StreamQueueUnavailableError as error:
        raise RequestLogQueueUnavailableError(f"request log {request_id} was not queued: {error}") from error


def bounded_request_body(request_body: dict[str, Any]) -> bytes:
    """The request as JSON, or a marker object holding the start of it when too long."""
    try:
        text = orjson.dumps(request_body)
    except orjson.JSONEncodeError as error:
        return orjson.dumps({"unserializable": True, "error": str(error)})
    if len(text) <= MAX_REQUEST_BODY_BYTES:
        return text
    # Quoting the head can double it (every `"` and `\` gets escaped); fall back to half then.
    for head_bytes in (MAX_REQUEST_BODY_BYTES - 256, MAX_REQUEST_BODY_BYTES // 2 - 256):
        head = text[:head_bytes].decode("utf-8", errors="ignore")
        marker = orjson.dumps({"truncated": True, "original_bytes": len(text), "head": head})
        if len(marker) <= MAX_REQUEST_BODY_BYTES:
            break
    return marker


def answer_text(completion: Mapping[str, Any]) -> str:
    """What a chat completion answered, to log as `response_text`: its first choice's
    message content, then its tool calls as JSON when it made any."""
    choices = completion.get("choices") or [{}]
    message = choices[0].get("message") or {}
    parts = [str(message["content"])] if message.get("content") else []
    if message.get("tool_calls"):
        parts.append(orjson.dumps(message["tool_calls"]).decode())
    return "\n".join(parts)


def bounded_text(text: str, limit: int) -> bytes:
    """`text` as UTF-8, cut to at most `limit` bytes with TRUNCATION_MARKER at the end."""
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= limit:
        return encoded
    head = encoded[: limit - MARKER_RESERVE_BYTES].decode("utf-8", errors="ignore").encode()
    marker = TRUNCATION_MARKER.format(omitted=len(encoded) - len(head), total=len(encoded))
    return head + marker.encode()


# Flushing (a worker's side)


def without_nul_escapes(json_text: str) -> str:
    """PostgreSQL's jsonb refuses \\u0000: such escapes become U+FFFD."""
    return JSON_NUL_ESCAPE.sub(r"\1\\ufffd", json_text) if "\\u0000" in json_text else json_text


@dataclass(frozen=True)
class QueuedRequestLog:
    """A stream entry, parsed and checked so that it fits `RequestLog`."""

    tenant_id: int
    schema_name: str
    request_id: str
    api_key_id: int | None
    model: str
    request_body: Any
    response_text: str
    status: int
    created_at: datetime

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> QueuedRequestLog:
        try:
            text = {key.decode(): value.decode() for key, value in fields.items()}
            if text.get("v") != FORMAT_VERSION:
                raise MalformedRequestLogError(f"unknown format version {text.get('v')!r}")
            record = cls(
                tenant_id=int(text["tenant_id"]),
                schema_name=text["schema_name"],
                request_id=text["request_id"],
                api_key_id=None if text["api_key_id"] == "" else int(text["api_key_id"]),
                model=text["model"].replace("\x00", "\ufffd"),
                request_body=orjson.loads(without_nul_escapes(text["request_body"])),
                response_text=text["response_text"].replace("\x00", "\ufffd"),
                status=int(text["status"]),
                created_at=datetime.fromisoformat(text["created_at"]),
            )
        except (KeyError, ValueError, UnicodeDecodeError) as error:  # orjson.JSONDecodeError is a ValueError
            raise MalformedRequestLogError(f"{type(error).__name__}: {error}") from None
        record.check()
        return record

    def check(self) -> None:
        if not 1 <= len(self.request_id) <= 128 or "\x00" in self.request_id:
            raise MalformedRequestLogError("request_id must have 1 to 128 characters and no NUL")
        if len(self.model) > 200:
            raise MalformedRequestLogError("model is too long")
        if not 100 <= self.status <= 599:
            raise MalformedRequestLogError(f"status {self.status} is not an HTTP status")
        if self.created_at.tzinfo is None:
            raise MalformedRequestLogError("created_at must be an aware datetime")
        if self.api_key_id is not None and not 0 < self.api_key_id <= MAX_ID:
            raise MalformedRequestLogError(f"api_key_id {self.api_key_id} is out of range")

    def to_model(self) -> RequestLog:
        return RequestLog(
            request_id=self.request_id,
            api_key_id=self.api_key_id,
            model=self.model,
            request_body=self.request_body,
            response_text=self.response_text,
            status=self.status,
            created_at=self.created_at,
        )


@dataclass(frozen=True)
class Skipped:
    """An entry that will not be stored, and why; only its metadata is kept."""

    entry: Entry
    reason: str


Parsed = tuple[Entry, QueuedRequestLog]


def flush_request_logs(
    batch_size: int = 200,
    stream: str | None = None,
    claim_idle_ms: int = 30_000,
    consumer: str | None = None,
) -> int:
    """Move one batch of queued request logs into their tenants' schemas (see the module docstring).

    Returns how many stream entries this call handled (stored, already stored,
    or skipped); less than `batch_size` means the queue was drained. Safe to run
    in any number of processes at once.
    """
    queue = request_log_queue(stream)
    client = sync_client("queues")
    with schema_context(get_public_schema_name()):
        entries = queue.read_batch(client, consumer or socket.gethostname(), claim_idle_ms, batch_size)
        if not entries:
            return 0
        parsed, skipped = parse_entries(entries)
        storable, refused = by_storable_schema(parsed)
        skipped += refused
        for schema_name, records in storable.items():
            skipped += store_in_schema(schema_name, records)
        acknowledge(client, queue, entries, skipped)
        return len(entries)


def parse_entries(entries: list[Entry]) -> tuple[list[Parsed], list[Skipped]]:
    parsed: list[Parsed] = []
    skipped: list[Skipped] = []
    for entry in entries:
        try:
            parsed.append((entry, QueuedRequestLog.from_fields(entry[1])))
        except MalformedRequestLogError as error:
            skipped.append(Skipped(entry, f"malformed: {error}"))
    return parsed, skipped


def by_storable_schema(parsed: list[Parsed]) -> tuple[dict[str, list[Parsed]], list[Skipped]]:
    """The entries grouped by schema, keeping only those whose schema still belongs
    to the entry's tenant (never public) and whose tenant still has logging on (checked now, in
    public, so turning logging off also drops what was queued before)."""
    tenants = {
        tenant.schema_name: tenant
        for tenant in Tenant.objects.filter(schema_name__in={record.schema_name for _, record in parsed})
        .exclude(schema_name=get_public_schema_name())
        .only("id", "schema_name", "request_logging_enabled")
    }
    storable: dict[str, list[Parsed]] = defaultdict(list)
    skipped: list[Skipped] = []
    for entry, record in parsed:
        tenant = tenants.get(record.schema_name)
        if tenant is None or tenant.pk != record.tenant_id:
            skipped.append(Skipped(entry, "no tenant of this id has this schema"))
        elif not tenant.request_logging_enabled:
            skipped.append(Skipped(entry, "the tenant turned request logging off"))
        else:
            storable[record.schema_name].append((entry, record))
    return storable, skipped


def store_in_schema(schema_name: str, records: list[Parsed]) -> list[Skipped]:
    """Insert the records into `schema_name`, skipping request ids already stored.
    Returns the entries PostgreSQL refused, with the reason."""
    with schema_context(schema_name):
        try:
            insert([record for _, record in records])
            return []
        except (DataError, IntegrityError, ProgrammingError):
            logger.exception("request logs: batch insert into %s failed; inserting one by one", schema_name)
        refused: list[Skipped] = []
        for entry, record in records:
            try:
                insert([record])
            except (DataError, IntegrityError, ProgrammingError) as error:
                refused.append(Skipped(entry, f"refused by the database: {error}"))
        return refused


def insert(records: list[QueuedRequestLog]) -> None:
    with transaction.atomic():
        RequestLog.objects.bulk_create([record.to_model() for record in records], ignore_conflicts=True)


def acknowledge(
    client: redis.Redis, queue: StreamQueue, entries: list[Entry], skipped: list[Skipped]
) -> None:
    """In one MULTI/EXEC: note the skipped entries' metadata (never their content) on
    the dead stream, then XACK and XDEL the whole batch (StreamQueue.acknowledge)."""
    for item in skipped:
        logger.warning("request logs: dropped %s %s: %s", queue.stream, item.entry.id.decode(), item.reason)
    dead = [DeadLetter(item.entry, item.reason[:1000], DEAD_LETTER_FIELDS) for item in skipped]
    queue.acknowledge(client, entries, dead)


# Retention


def purge_expired_request_logs(now: datetime | None = None) -> int:
    """Delete every tenant's request logs older than its retention, inside its schema.

    Covers every tenant with a schema, active or not: retention is a promise
    about how long content is kept, and a suspended tenant's prompts must
    expire too. A tenant whose schema cannot be read is logged and skipped, so
    it never holds up the others. Returns how many rows were deleted.
    """
    moment = now or timezone.now()
    with schema_context(get_public_schema_name()):
        tenants = list(
            Tenant.objects.exclude(schema_name=get_public_schema_name()).only(
                "id", "schema_name", "request_log_retention_days"
            )
        )
    deleted = 0
    for tenant in tenants:
        cutoff = moment - timedelta(days=max(1, tenant.request_log_retention_days))
        try:
            with schema_context(tenant.schema_name):
                deleted += delete_logs_before(cutoff)
        except ProgrammingError:
            logger.exception("request logs: cannot purge the schema %s", tenant.schema_name)
    return deleted


def delete_logs_before(cutoff: datetime) -> int:
    """Delete the current schema's rows created before `cutoff`, PURGE_BATCH_SIZE rows per
    transaction, so a large backlog never becomes one huge transaction."""
    deleted = 0
    while True:
        with transaction.atomic():
            expired = RequestLog.objects.filter(created_at__lt=cutoff).order_by("created_at")
            ids = list(expired.values_list("id", flat=True)[:PURGE_BATCH_SIZE])
            if not ids:
                return deleted
            deleted += RequestLog.objects.filter(id__in=ids).delete()[0]


# The owner's settings


def update_logging_settings(tenant: Tenant, *, enabled: bool, retention_days: int, changed_by: str) -> bool:
    """Turn request logging on or off and set the retention (1-365 days); whether anything
    changed. Gateways drop their cached copies of the tenant's keys (which carry the
    flag) once it commits, so the change holds within a second; rows older than a
    shorter retention go at the next hourly purge. Logged as an audit line."""
    if not 1 <= retention_days <= 365:
        raise ValueError("The retention is 1 to 365 days.")
    before = (tenant.request_logging_enabled, tenant.request_log_retention_days)
    if before == (enabled, retention_days):
        return False
    Tenant.objects.filter(pk=tenant.pk).update(
        request_logging_enabled=enabled, request_log_retention_days=retention_days
    )
    tenant.request_logging_enabled, tenant.request_log_retention_days = enabled, retention_days
    logger.info(
        "request logging settings changed",
        extra={
            "audit": "request_logs.settings",
            "tenant_schema": tenant.schema_name,
            "changed_by": changed_by,
            "logging_before": before[0],
            "logging_after": enabled,
            "retention_days_before": before[1],
            "retention_days_after": retention_days,
        },
    )
    return True
