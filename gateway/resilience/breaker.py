"""A circuit breaker per provider and model whose state lives in Redis, so every
gateway process opens, half-opens and closes it together."""

from __future__ import annotations

import enum
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from redis.asyncio import Redis

from aiaas.observability.metrics import CIRCUIT_BREAKER_STATE, CIRCUIT_BREAKER_TRANSITIONS, series
from aiaas.redis_keys import hash_tag, redis_key, tenant_key
from gateway.resilience import breaker_scripts as scripts

logger = logging.getLogger(__name__)

# An open breaker nobody calls is forgotten this long after its last transition.
IDLE_EXPIRY_SECONDS = 3600.0
# The rolling window is kept in this many time buckets: a failure counts for
# between (WINDOW_BUCKETS - 1) / WINDOW_BUCKETS of window_seconds and all of it.
WINDOW_BUCKETS = 10
# An unreachable Redis must not turn into an outage of every provider.
REDIS_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_STATES = (BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN)
# aiaas_circuit_breaker_state's values.
_GAUGE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
_ACQUIRED_STATES = {
    scripts.ADMITTED: BreakerState.CLOSED,
    scripts.PROBE: BreakerState.HALF_OPEN,
    scripts.REJECTED: BreakerState.OPEN,
}


@dataclass(frozen=True)
class BreakerPolicy:
    """When a breaker opens and how it recovers.

    It opens after `failure_threshold` failures within `window_seconds`, or when
    at least `minimum_calls` calls in the window failed more than
    `failure_ratio` of the time. It then rejects calls for `open_seconds`, after
    which it admits `half_open_probes` concurrent probes; a probe slot is freed
    after `probe_timeout_seconds` (default: `open_seconds`) if its call never
    reports.
    """

    failure_threshold: int = 5
    window_seconds: float = 30.0
    failure_ratio: float = 0.5
    minimum_calls: int = 10
    open_seconds: float = 10.0
    half_open_probes: int = 1
    probe_timeout_seconds: float | None = None

    def __post_init__(self) -> None:
        if min(self.failure_threshold, self.minimum_calls, self.half_open_probes) < 1:
            raise ValueError("failure_threshold, minimum_calls and half_open_probes must be at least 1")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        durations = (self.window_seconds, self.open_seconds, self.probe_slot_seconds)
        if min(durations) <= 0:
            raise ValueError("durations must be positive")

    @property
    def probe_slot_seconds(self) -> float:
        """How long a half-open probe holds its slot without reporting."""
        return self.open_seconds if self.probe_timeout_seconds is None else self.probe_timeout_seconds


@dataclass(frozen=True)
class Permit:
    """The right to make one call, to be reported with record_success or
    record_failure. `generation` names the breaker episode it was granted in;
    None means Redis was unreachable and the call goes unrecorded."""

    key: str
    token: str
    is_probe: bool
    generation: int | None


class CircuitOpenError(Exception):
    """The breaker of `key` rejected the call; it may admit one again in about
    `retry_after_seconds` (an upper bound while a probe is in flight)."""

    def __init__(self, key: str, retry_after_seconds: float) -> None:
        super().__init__(f"circuit {key!r} is open; retry after {retry_after_seconds:.3f}s")
        self.key = key
        self.retry_after_seconds = retry_after_seconds


def _observe(key: str, state: BreakerState, *, transition: bool) -> None:
    """The state this process saw, and a transition it caused, in the metrics."""
    series(CIRCUIT_BREAKER_STATE, key).set(_GAUGE_VALUES[state])
    if transition:
        series(CIRCUIT_BREAKER_TRANSITIONS, key, state.value).inc()


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _redis_keys(key: str) -> tuple[str, str, str]:
    # The braces are a Redis Cluster hash tag: all of one breaker's keys share
    # a slot, which a script touching several of them needs.
    tag = hash_tag(key)
    return (
        redis_key("breaker", tag, "state"),
        redis_key("breaker", tag, "probes"),
        redis_key("breaker", tag, "window"),
    )


class CircuitBreaker:
    """Circuit breakers shared by every process using the same Redis, one per key.

    The gateway keys breakers by `provider_slug:model_id`; when the provider
    credential belongs to a tenant, the key must carry the tenant too, or one
    tenant's exhausted quota would open the breaker for everyone.

    What counts as a failure is the caller's decision. The gateway reports 5xx
    answers, timeouts, connection errors and 429s as failures and a client's
    own 4xx as success (the provider answered correctly). A call that ends
    without an outcome (the client went away) should be released with
    `release` so a probe slot frees at once instead of after its timeout.

    Guarantees: each acquire and each report is one atomic Lua script using
    the Redis server's clock, so all processes see one state and a half-open
    breaker admits at most `half_open_probes` concurrent probes across all of
    them. Outcomes of calls admitted before the breaker last opened or closed
    are ignored. Every key has a TTL. When Redis is unreachable the breaker
    fails open: calls are admitted and go unrecorded, with a warning logged.
    """

    def __init__(
        self, redis: Redis, policy: BreakerPolicy = BreakerPolicy(), *, tenant_share: float = 0.5
    ) -> None:
        self._policy = policy
        self._redis = redis
        # A tenant's failures count toward a breaker only up to this share of its threshold.
        self._tenant_failures = max(1, math.floor(policy.failure_threshold * tenant_share))
        self._acquire = redis.register_script(scripts.ACQUIRE)
        self._record = redis.register_script(scripts.RECORD)
        self._state = redis.register_script(scripts.STATE)

    async def acquire(self, key: str) -> Permit:
        """A permit for one call; raises CircuitOpenError when the breaker rejects it."""
        token = uuid.uuid4().hex
        args = (token, self._policy.half_open_probes, _milliseconds(self._policy.probe_slot_seconds))
        try:
            verdict, generation, retry_after_ms = await self._acquire(keys=_redis_keys(key)[:2], args=args)
        except REDIS_UNAVAILABLE as error:
            logger.warning("circuit breaker %s: Redis unreachable (%s), admitting the call", key, error)
            return Permit(key=key, token=token, is_probe=False, generation=None)
        # A probe's admission is the breaker half-opening (one probe at a time by default).
        _observe(key, _ACQUIRED_STATES[verdict], transition=verdict == scripts.PROBE)
        if verdict == scripts.REJECTED:
            raise CircuitOpenError(key, int(retry_after_ms) / 1000)
        return Permit(key=key, token=token, is_probe=verdict == scripts.PROBE, generation=int(generation))

    async def record_success(self, permit: Permit) -> None:
        """The call succeeded; a probe's success closes the breaker."""
        await self._report(permit, "success")

    async def record_failure(self, permit: Permit) -> None:
        """The call failed; may open the breaker, and a probe's failure re-opens it."""
        await self._report(permit, "failure")

    async def counts_for_tenant(self, key: str, tenant_id: int) -> bool:
        """Whether one more of `tenant_id`'s failures may count toward breaker `key`:
        each tenant's share of the failure threshold per window, so one tenant's
        timeouts (its huge prompts, say) cannot open a breaker for everyone.
        Failures beyond it are the tenant's alone. Redis unreachable: they count."""
        counter = tenant_key("breaker", tenant_id, "failures", key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                # The window starts at a tenant's first failure (SET NX, as EXPIRE NX needs Redis 7).
                pipe.set(counter, 0, ex=math.ceil(self._policy.window_seconds), nx=True)
                pipe.incr(counter)
                _, count = await pipe.execute()
        except REDIS_UNAVAILABLE as error:
            logger.warning("circuit breaker %s: Redis unreachable (%s), failure counted", key, error)
            return True
        return int(count) <= self._tenant_failures

    async def release(self, permit: Permit) -> None:
        """The call ended without an outcome; frees a probe's slot and counts nothing."""
        await self._report(permit, "release")

    async def state(self, key: str) -> BreakerState:
        """The breaker's state now, as every process sees it."""
        state: Any = await self._state(keys=_redis_keys(key)[:1])
        return _STATES[int(state)]

    async def _report(self, permit: Permit, outcome: str) -> None:
        if permit.generation is None:
            return
        try:
            result = await self._record(keys=_redis_keys(permit.key), args=self._record_args(permit, outcome))
        except REDIS_UNAVAILABLE as error:
            logger.warning(
                "circuit breaker %s: Redis unreachable (%s), %s not recorded", permit.key, error, outcome
            )
            return
        if result == scripts.OPENED:
            logger.warning("circuit breaker %s opened", permit.key)
            _observe(permit.key, BreakerState.OPEN, transition=True)
        elif result == scripts.CLOSED:
            logger.info("circuit breaker %s closed", permit.key)
            _observe(permit.key, BreakerState.CLOSED, transition=True)

    def _record_args(self, permit: Permit, outcome: str) -> tuple[str | int, ...]:
        policy = self._policy
        window_ms = _milliseconds(policy.window_seconds)
        return (
            permit.token,
            str(permit.generation),
            int(permit.is_probe),
            outcome,
            policy.failure_threshold,
            repr(policy.failure_ratio),
            policy.minimum_calls,
            window_ms,
            math.ceil(window_ms / WINDOW_BUCKETS),
            WINDOW_BUCKETS,
            _milliseconds(policy.open_seconds),
            _milliseconds(IDLE_EXPIRY_SECONDS),
        )
