"""Settlements that could not reach Redis, kept on local disk until they do.

When Redis fails at settle time (the request was admitted, so Redis answered
moments before), the request's usage event and its reservation's reconcile
are written to one file in USAGE_SPOOL_DIR (written to a temporary name,
fsynced, then renamed: a crash leaves the old state or the new, never half).
`replay` sends each file's usage event to the queue and reconciles its
reservation, then deletes the file; a file whose replay fails stays for the
next try. The gateway replays while files remain (`Replayer`), and
`manage.py replay_usage_spool` does it by hand.

Replaying twice is harmless: the ledger stores a request id once, and a
reservation reconciles once. So no usage event is lost while the spool's disk
lasts, and a reservation held by a lost reconcile is released once Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from django.conf import settings

from billing.limits import Hold, Limiter, LimiterUnavailableError, Reservation
from billing.usage import UsageQueueUnavailableError, UsageRecord, record_usage

logger = logging.getLogger(__name__)
REPLAY_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class Reconcile:
    """A reservation's reconcile, as `Limiter.reconcile` takes it."""

    reservation: Reservation
    actual_tokens: int
    actual_usd_micros: int
    extended: Hold

    async def run(self, limiter: Limiter) -> None:
        await limiter.reconcile(
            self.reservation,
            actual_tokens=self.actual_tokens,
            actual_usd_micros=self.actual_usd_micros,
            extended=self.extended,
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reconcile:
        return cls(
            Reservation(**data["reservation"]),
            int(data["actual_tokens"]),
            int(data["actual_usd_micros"]),
            Hold(**data["extended"]),
        )


def spool_dir() -> Path:
    return Path(settings.USAGE_SPOOL_DIR)


def keep(request_id: str, usage: UsageRecord | None, reconcile: Reconcile | None) -> None:
    """Write what did not reach Redis; durable once this returns."""
    folder = spool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    content = orjson.dumps(
        {
            "usage": usage.to_fields() if usage is not None else None,
            "reconcile": reconcile.as_json() if reconcile is not None else None,
        }
    )
    final = folder / f"{request_id}.json"
    temporary = folder / f".{request_id}.tmp"
    with open(temporary, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, final)
    logger.warning("settlement of %s spooled to %s", request_id, final)


def pending() -> list[Path]:
    folder = spool_dir()
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("*.json") if not path.name.startswith("."))


async def replay(client: aioredis.Redis, limiter: Limiter) -> int:
    """Send every spooled settlement to Redis; the number completed. Stops at the
    first Redis failure (the rest waits for the next try)."""
    done = 0
    for path in pending():
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            logger.exception("spooled settlement %s cannot be read; left in place", path)
            continue
        try:
            if data["usage"] is not None:
                await record_usage(client, UsageRecord.from_fields(data["usage"]))
                data["usage"] = None  # queued: a failed reconcile must not queue it again
            if data["reconcile"] is not None:
                await Reconcile.from_json(data["reconcile"]).run(limiter)
        except (UsageQueueUnavailableError, LimiterUnavailableError):
            rewrite(path, data)
            return done
        path.unlink(missing_ok=True)
        done += 1
    return done


def rewrite(path: Path, data: dict[str, Any]) -> None:
    request_id = path.stem
    usage = UsageRecord.from_fields(data["usage"]) if data["usage"] is not None else None
    reconcile = Reconcile.from_json(data["reconcile"]) if data["reconcile"] is not None else None
    keep(request_id, usage, reconcile)


class Replayer:
    """Replays a process's spool in the background while files remain."""

    def __init__(self, client: aioredis.Redis, limiter: Limiter) -> None:
        self.client = client
        self.limiter = limiter
        self.task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        while pending():
            await asyncio.sleep(REPLAY_INTERVAL_SECONDS)
            try:
                await replay(self.client, self.limiter)
            except Exception:
                logger.exception("replaying the usage spool failed; trying again")
