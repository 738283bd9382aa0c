"""Celery beat that sends only while it holds the leader lease, so a standby beat
(a second replica, a pod rolling over) cannot double-schedule.

The lease is a Redis key holding this scheduler's token with a time to live:
taken with SET NX, renewed on every tick while the value is still ours, and
deleted on a clean shutdown only if it is still ours. A standby asks on each
of its ticks and takes over within BEAT_LEADER_TTL_SECONDS of a leader dying.
On taking over it reads the schedule again from the database, where the
previous leader saved each entry's last run: it does not resend what was sent.
A task sent in the dead leader's last few seconds may be sent again (its last
run not yet saved); tasks tolerate redelivery (docs/decisions/0035).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from aiaas.redis_clients import sync_client

logger = logging.getLogger(__name__)

# Extend the lease only if it is still ours (another holder's must not be touched).
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """A Redis key one holder at a time owns until it lapses or is released."""

    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}".encode()

    def hold(self) -> bool:
        """Renew the lease if it is ours, or take it if it is free; False when another holds it."""
        if self.client.eval(RENEW, 1, self.key, self.token, self.ttl_ms):
            return True
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def release(self) -> None:
        self.client.eval(RELEASE, 1, self.key, self.token)


class LeaderScheduler(DatabaseScheduler):
    """django-celery-beat's database scheduler, ticking only as the lease's holder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lease = Lease(sync_client("control"), settings.BEAT_LEADER_KEY, settings.BEAT_LEADER_TTL_SECONDS)
        self.leading = False
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send what is due when leading, and say how long to sleep: never past a third
        of the lease, so it is renewed well before it lapses."""
        renew_every = float(settings.BEAT_LEADER_TTL_SECONDS) / 3
        self.beat_heartbeat()
        try:
            holding = self.lease.hold()
        except redis.RedisError:
            logger.warning("beat: the leader lease could not be checked; not sending", exc_info=True)
            holding = False
        if not holding:
            if self.leading:
                logger.warning("beat: lost the leader lease; standing by")
            self.leading = False
            return renew_every
        if not self.leading:
            logger.info("beat: holding the leader lease; sending the schedule")
            self.leading = True
            self.read_schedule_again()
        return float(min(super().tick(*args, **kwargs), renew_every))

    def beat_heartbeat(self) -> None:
        """Touch BEAT_HEARTBEAT_FILE: a liveness probe restarts a beat whose ticks stopped."""
        if settings.BEAT_HEARTBEAT_FILE:
            Path(settings.BEAT_HEARTBEAT_FILE).touch()

    def read_schedule_again(self) -> None:
        """Entries as the last leader saved them (their last runs), not as this process read them."""
        self._initial_read = True
        self._heap = None

    def close(self) -> None:
        super().close()
        if self.leading:
            self.lease.release()
