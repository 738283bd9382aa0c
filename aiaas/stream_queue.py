"""A durable queue on a Redis stream, drained by a consumer group.

The promise, with a sink that stores an entry idempotently (a unique id):
every appended entry is stored exactly once, or set aside with the reason,
whatever happens to the consumers.

- `append` is one XADD; nothing else happens on the producer's path.
- `read_batch` takes first the entries another consumer read and did not
  acknowledge within `claim_idle_ms` (it died), then new ones. Nothing is
  acknowledged there.
- The caller stores the batch, then `acknowledge`s it: in one MULTI/EXEC the
  dead letters are copied to the dead stream (with `dead_reason` and
  `dead_source_id`), and the whole batch is XACKed and XDELed.

A consumer killed before acknowledging leaves its entries pending, and a later
one claims and stores them again, which the sink's unique id turns into
nothing. An entry leaves the stream only once stored or set aside, so it is
never lost; the stream is never trimmed, and stays small because handled
entries are deleted. An entry is as durable as Redis makes it (run AOF).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import redis
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

logger = logging.getLogger(__name__)

# The group every queue's consumers read in (the name the usage ledger began with).
CONSUMER_GROUP = "ledger"


class Entry(NamedTuple):
    """One stream entry: its id and its fields, as Redis returns them."""

    id: bytes
    fields: dict[bytes, bytes]


@dataclass(frozen=True)
class DeadLetter:
    """An entry the consumer will not store, and why. `kept_fields` names the
    fields copied to the dead stream (all of them when None), so a queue whose
    entries hold content can keep only their metadata."""

    entry: Entry
    reason: str
    kept_fields: tuple[str, ...] | None = None

    def dead_fields(self) -> dict[FieldT, EncodableT]:
        fields = self.entry.fields
        if self.kept_fields is not None:
            fields = {
                name.encode(): fields[name.encode()] for name in self.kept_fields if name.encode() in fields
            }
        dead: dict[FieldT, EncodableT] = {key: value for key, value in fields.items()}
        dead.update({b"dead_reason": self.reason, b"dead_source_id": self.entry.id})
        return dead


class StreamQueueUnavailableError(RuntimeError):
    """An entry could not be appended because Redis did not answer."""


@dataclass(frozen=True)
class StreamQueue:
    """The queue on `stream`; dead letters go to `dead_stream`, trimmed to about
    `dead_max_length` entries when set (never, when None)."""

    stream: str
    dead_stream: str
    group: str = CONSUMER_GROUP
    dead_max_length: int | None = None

    async def append(self, client: aioredis.Redis, fields: Mapping[str, EncodableT]) -> bytes:
        """One XADD; the new entry's id. Raises StreamQueueUnavailableError when Redis does not answer."""
        try:
            entry: dict[FieldT, EncodableT] = {name: value for name, value in fields.items()}
            return cast(bytes, await client.xadd(self.stream, entry))
        except (redis.RedisError, OSError) as error:
            raise StreamQueueUnavailableError(f"{type(error).__name__}: {error}") from error

    def read_batch(
        self, client: redis.Redis, consumer: str, claim_idle_ms: int, batch_size: int
    ) -> list[Entry]:
        """Up to `batch_size` entries for `consumer`: first those a dead reader left pending
        longer than `claim_idle_ms`, then new ones. Nothing is acknowledged here."""
        self.ensure_group(client)
        entries = self.claim_stale(client, consumer, claim_idle_ms, batch_size)
        if len(entries) < batch_size:
            entries += self.read_new(client, consumer, batch_size - len(entries))
        return entries

    def acknowledge(
        self, client: redis.Redis, entries: Sequence[Entry], dead: Sequence[DeadLetter] = ()
    ) -> None:
        """In one MULTI/EXEC: the dead letters to the dead stream, then XACK and XDEL
        the whole batch. So an entry leaves the pending list, the stream and (if
        dead) reaches the dead stream all at once."""
        if not entries:
            return
        pipeline = client.pipeline(transaction=True)
        for letter in dead:
            pipeline.xadd(
                self.dead_stream, letter.dead_fields(), maxlen=self.dead_max_length, approximate=True
            )
        entry_ids = [entry.id for entry in entries]
        pipeline.xack(self.stream, self.group, *entry_ids)
        pipeline.xdel(self.stream, *entry_ids)
        pipeline.execute()

    def ensure_group(self, client: redis.Redis) -> None:
        """Create the group (and the stream) once; from id 0, so entries appended before it count."""
        try:
            client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def claim_stale(self, client: redis.Redis, consumer: str, claim_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries a consumer read and did not acknowledge within `claim_idle_ms`.

        Claims ids only, then reads them: Redis 6.2 keeps an entry deleted from the
        stream in the pending list and returns no id for it, which would wedge the
        claim forever; such ghosts are acknowledged here.
        """
        claimed: list[bytes] = client.xautoclaim(
            self.stream,
            self.group,
            consumer,
            min_idle_time=claim_idle_ms,
            start_id="0-0",
            count=count,
            justid=True,
        )
        if not claimed:
            return []
        pipeline = client.pipeline(transaction=False)
        for entry_id in claimed:
            pipeline.xrange(self.stream, min=entry_id, max=entry_id)
        entries: list[Entry] = []
        ghosts: list[bytes] = []
        for entry_id, found in zip(claimed, pipeline.execute(), strict=True):
            if found:
                entries.append(Entry(*found[0]))
            else:
                ghosts.append(entry_id)
        if ghosts:
            logger.warning(
                "stream queue: acknowledging %d pending ids no longer in %s", len(ghosts), self.stream
            )
            client.xack(self.stream, self.group, *ghosts)
        return entries

    def read_new(self, client: redis.Redis, consumer: str, count: int) -> list[Entry]:
        response = client.xreadgroup(self.group, consumer, {self.stream: ">"}, count=count)
        # RESP2 (these clients' protocol) answers [[stream, [(id, fields), ...]]], or None.
        streams = cast("list[list[Any]]", response or [])
        return [Entry(*entry) for _, stream_entries in streams for entry in stream_entries]


def drain(flush_batch: Callable[[int], int], batch_size: int, time_budget_seconds: float) -> int:
    """Call `flush_batch(batch_size)` until a batch comes back short (the queue is
    empty) or the time budget is spent; the entries handled in all."""
    deadline = time.monotonic() + time_budget_seconds
    handled = 0
    while True:
        batch = flush_batch(batch_size)
        handled += batch
        if batch < batch_size or time.monotonic() >= deadline:
            return handled
