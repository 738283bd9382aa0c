"""The usage ledger's queue: the gateway appends, a flusher moves events to PostgreSQL.

Every /v1 request, served or failed, appends one event to the Redis stream
`usage:events` (`record_usage`, one XADD, no PostgreSQL write on the request
path). `flush_usage_events` moves them to `UsageEvent` rows through the
stream queue's consumer group (aiaas/stream_queue.py), exactly once per
request id:

1. take a batch: first entries another flusher read but never acknowledged
   within `claim_idle_ms` (it died), then new ones;
2. insert the batch in one transaction, `ON CONFLICT (request_id) DO NOTHING`;
3. only then, in one MULTI/EXEC, copy entries that cannot be stored to the
   dead stream and XACK + XDEL the whole batch.

A flusher killed before step 2 commits leaves its entries pending, and a later
flusher claims and inserts them. Killed after step 2 and before step 3, the
rows exist and the entries are still pending: the next flusher inserts them
again, which the unique request id turns into nothing, then acknowledges them.
So an event is never lost (it leaves the stream only after its row commits) and
never counted twice (the request id is unique in the ledger).

Entries the flusher cannot store (unreadable fields, an unknown tenant, a row
PostgreSQL refuses) are copied to `usage:dead` with the reason, in step 3, so
one bad entry never holds up the rest. An entry there can be replayed by
XADDing its fields back to `usage:events`.

Durability: an event is as durable as Redis makes it; run production Redis with
AOF (`appendfsync everysec` loses at most a second of events in a crash of
Redis itself). The stream is never trimmed by length, since trimming would drop
uncounted requests; it stays small because flushed entries are deleted.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation

import redis
import redis.asyncio
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django_tenants.utils import get_public_schema_name, schema_context

from aiaas.redis_clients import sync_client
from aiaas.stream_queue import DeadLetter, Entry, StreamQueue, StreamQueueUnavailableError
from billing.models import UsageEvent
from tenants.models import ApiKey, Tenant

logger = logging.getLogger(__name__)

USAGE_STREAM = "usage:events"
FORMAT_VERSION = "1"
EIGHT_PLACES = Decimal("0.00000001")
MAX_COST_USD = Decimal("1000000")  # what DecimalField(14, 8) holds
MAX_ID = 2**63 - 1  # BigAutoField
MAX_COUNT = 2**31 - 1  # PositiveIntegerField
MAX_SMALL = 2**15 - 1  # PositiveSmallIntegerField
# Every ledger insert holds this advisory lock shared until it commits. A reader that
# takes it exclusively (analytics/rollups.py) waits for inserts in flight, so every
# id up to the max(id) it then reads is committed: ids are drawn when a row is
# inserted, and concurrent flushes commit out of id order.
LEDGER_INSERT_LOCK = 0x7573616765  # "usage"

Rejected = tuple[Entry, str]  # an entry the ledger cannot take, and why


class UsageQueueUnavailableError(RuntimeError):
    """The usage event could not be appended because Redis did not answer.

    Rare by design: the gateway admits a request only after its rate-limit and
    budget step in the same Redis succeeded (fail closed). The caller logs it
    with the request id; the request itself has already been answered.
    """


class MalformedUsageEventError(ValueError):
    """A stream entry that is not a valid usage event."""


def dead_stream_of(stream: str) -> str:
    """`usage:events` sets entries aside in `usage:dead`; other streams (tests) in `<stream>:dead`."""
    return "usage:dead" if stream == USAGE_STREAM else f"{stream}:dead"


def usage_queue(stream: str | None = None) -> StreamQueue:
    """The usage events' queue (settings.USAGE_STREAM unless `stream` is given)."""
    stream = stream or settings.USAGE_STREAM
    return StreamQueue(stream, dead_stream_of(stream))


@dataclass(frozen=True)
class UsageRecord:
    """One /v1 request's usage, as the gateway reports it. Validated on creation,
    so what reaches the queue, and what the flusher accepts, fits the ledger."""

    request_id: str
    tenant_id: int
    api_key_id: int | None
    model: str
    tier: int | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    latency_ms: int
    ttft_ms: int | None
    status: int
    error_type: str
    estimated: bool
    created_at: datetime

    def __post_init__(self) -> None:
        if not 1 <= len(self.request_id) <= 128:
            raise MalformedUsageEventError("request_id must have 1 to 128 characters")
        if len(self.model) > 200 or len(self.error_type) > 100:
            raise MalformedUsageEventError("model or error_type is too long")
        if any("\x00" in text for text in (self.request_id, self.model, self.error_type)):
            raise MalformedUsageEventError("text fields cannot hold NUL characters")
        if self.created_at.tzinfo is None:
            raise MalformedUsageEventError("created_at must be an aware datetime")
        if not 100 <= self.status <= 599:
            raise MalformedUsageEventError(f"status {self.status} is not an HTTP status")
        check_range("tenant_id", self.tenant_id, MAX_ID)
        for name in ("prompt_tokens", "completion_tokens", "latency_ms"):
            check_range(name, getattr(self, name), MAX_COUNT)
        for name, high in (("api_key_id", MAX_ID), ("ttft_ms", MAX_COUNT), ("tier", MAX_SMALL)):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), high)
        if not self.cost_usd.is_finite() or not Decimal(0) <= self.cost_usd < MAX_COST_USD:
            raise MalformedUsageEventError(f"cost_usd {self.cost_usd} is out of range")
        object.__setattr__(self, "cost_usd", self.cost_usd.quantize(EIGHT_PLACES))

    def to_fields(self) -> dict[str, str]:
        """The stream entry's fields: strings, with "" for None."""
        fields = {name: "" if value is None else str(value) for name, value in asdict(self).items()}
        fields["estimated"] = "1" if self.estimated else "0"
        fields["created_at"] = self.created_at.isoformat()
        return {"v": FORMAT_VERSION, **fields}

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes] | Mapping[str, str]) -> UsageRecord:
        """Parse a stream entry; raises MalformedUsageEventError for anything off."""
        try:
            text = {
                (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in fields.items()
            }
            if text.get("v") != FORMAT_VERSION:
                raise MalformedUsageEventError(f"unknown format version {text.get('v')!r}")
            return cls(
                request_id=text["request_id"],
                tenant_id=int(text["tenant_id"]),
                api_key_id=optional_int(text["api_key_id"]),
                model=text["model"],
                tier=optional_int(text["tier"]),
                prompt_tokens=int(text["prompt_tokens"]),
                completion_tokens=int(text["completion_tokens"]),
                cost_usd=Decimal(text["cost_usd"]),
                latency_ms=int(text["latency_ms"]),
                ttft_ms=optional_int(text["ttft_ms"]),
                status=int(text["status"]),
                error_type=text["error_type"],
                estimated={"1": True, "0": False}[text["estimated"]],
                created_at=datetime.fromisoformat(text["created_at"]),
            )
        except MalformedUsageEventError:
            raise
        except (KeyError, ValueError, TypeError, InvalidOperation, UnicodeDecodeError) as error:
            raise MalformedUsageEventError(f"{type(error).__name__}: {error}") from None

    def to_model(self) -> UsageEvent:
        return UsageEvent(**asdict(self))


def check_range(name: str, value: int, high: int) -> None:
    if not 0 <= value <= high:
        raise MalformedUsageEventError(f"{name} {value} is out of range")


def optional_int(text: str) -> int | None:
    return None if text == "" else int(text)


async def record_usage(client: redis.asyncio.Redis, record: UsageRecord, stream: str | None = None) -> None:
    """Append the request's usage event to the queue: one XADD, nothing else.

    Raises UsageQueueUnavailableError when Redis does not answer.
    """
    try:
        await usage_queue(stream).append(client, record.to_fields())
    except StreamQueueUnavailableError as error:
        raise UsageQueueUnavailableError(
            f"usage event {record.request_id} was not queued: {error}"
        ) from error


def flush_usage_events(
    batch_size: int = 500,
    consumer: str | None = None,
    claim_idle_ms: int = 30_000,
    stream: str | None = None,
) -> int:
    """Move one batch of queued usage events into the ledger (see the module docstring).

    Returns how many stream entries this call handled (stored, already stored,
    or set aside); less than `batch_size` means the queue was drained.
    Safe to run in any number of processes at once.
    """
    queue = usage_queue(stream)
    client = sync_client("queues")
    with schema_context(get_public_schema_name()):
        entries = queue.read_batch(client, consumer or socket.gethostname(), claim_idle_ms, batch_size)
        if not entries:
            return 0
        records, rejected = parse_entries(entries)
        rejected += store(records)
        acknowledge(client, queue, entries, rejected)
        return len(entries)


def parse_entries(entries: list[Entry]) -> tuple[list[tuple[Entry, UsageRecord]], list[Rejected]]:
    records: list[tuple[Entry, UsageRecord]] = []
    rejected: list[Rejected] = []
    for entry in entries:
        try:
            records.append((entry, UsageRecord.from_fields(entry[1])))
        except MalformedUsageEventError as error:
            rejected.append((entry, f"malformed: {error}"))
    return records, rejected


def store(records: list[tuple[Entry, UsageRecord]]) -> list[Rejected]:
    """Insert the records, skipping request ids already in the ledger.

    Returns the entries that cannot be stored, with the reason. An event of an
    unknown tenant is refused; a key that no longer exists (or is not the
    event's tenant's) is dropped from the row, which still counts for the tenant.
    """
    tenant_ids = existing_tenant_ids({record.tenant_id for _, record in records})
    key_ids = {record.api_key_id for _, record in records if record.api_key_id is not None}
    key_tenants = dict(ApiKey.objects.filter(pk__in=key_ids).values_list("pk", "tenant_id"))
    storable: list[tuple[Entry, UsageRecord]] = []
    refused: list[Rejected] = []
    for entry, record in records:
        if record.tenant_id not in tenant_ids:
            refused.append((entry, f"unknown tenant {record.tenant_id}"))
        elif record.api_key_id is not None and key_tenants.get(record.api_key_id) != record.tenant_id:
            storable.append((entry, replace(record, api_key_id=None)))
        else:
            storable.append((entry, record))
    try:
        insert([record for _, record in storable])
    except (DataError, IntegrityError):
        logger.exception("usage ledger: batch insert failed; inserting one by one")
        refused += insert_one_by_one(storable)
    return refused


def existing_tenant_ids(tenant_ids: set[int]) -> set[int]:
    return set(Tenant.objects.filter(pk__in=tenant_ids).values_list("pk", flat=True))


def insert(records: list[UsageRecord]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED; check them at the
        # INSERT, so a refused row fails here even inside a caller's transaction.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [LEDGER_INSERT_LOCK])
        UsageEvent.objects.bulk_create([record.to_model() for record in records], ignore_conflicts=True)


def insert_one_by_one(records: list[tuple[Entry, UsageRecord]]) -> list[Rejected]:
    refused: list[Rejected] = []
    for entry, record in records:
        try:
            insert([record])
        except (DataError, IntegrityError) as error:
            refused.append((entry, f"refused by the database: {error}"))
    return refused


def acknowledge(
    client: redis.Redis, queue: StreamQueue, entries: list[Entry], rejected: list[Rejected]
) -> None:
    """Set the rejected entries aside (all their fields, with why) and acknowledge the
    batch, in one MULTI/EXEC (StreamQueue.acknowledge)."""
    for (entry_id, _), reason in rejected:
        logger.error(
            "usage ledger: set aside %s %s to %s: %s",
            queue.stream,
            entry_id.decode(),
            queue.dead_stream,
            reason,
        )
    queue.acknowledge(client, entries, [DeadLetter(entry, reason) for entry, reason in rejected])
