"""The resilience primitives: the Redis-backed circuit breaker (in one process,
across processes and under concurrency), retry delays, the attempt budget, the
bulkhead and deadlines. Breaker tests use a fresh key each so runs never collide."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from multiprocessing.connection import Connection

import pytest
from redis.asyncio import Redis

from gateway.resilience import (
    AttemptBudget,
    BreakerPolicy,
    BreakerState,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    Deadline,
    Permit,
    RetryPolicy,
    parse_retry_after,
    retry_delay,
)

FAST = BreakerPolicy(failure_threshold=3, open_seconds=0.3, probe_timeout_seconds=5.0)


@asynccontextmanager
async def breaker_on_redis(policy: BreakerPolicy = FAST) -> AsyncIterator[tuple[CircuitBreaker, str, Redis]]:
    client = Redis.from_url(os.environ["REDIS_URL"])
    key = f"test-provider:{uuid.uuid4().hex}"
    try:
        yield CircuitBreaker(client, policy), key, client
    finally:
        stored = [name async for name in client.scan_iter(match=f"breaker:{{{key}}}:*")]
        if stored:
            await client.delete(*stored)
        await client.aclose()


def run(
    scenario: Callable[[CircuitBreaker, str, Redis], Awaitable[None]], policy: BreakerPolicy = FAST
) -> None:
    async def main() -> None:
        async with breaker_on_redis(policy) as (breaker, key, client):
            await scenario(breaker, key, client)

    asyncio.run(main())


async def fail(breaker: CircuitBreaker, key: str, times: int) -> None:
    for _ in range(times):
        await breaker.record_failure(await breaker.acquire(key))


async def succeed(breaker: CircuitBreaker, key: str, times: int) -> None:
    for _ in range(times):
        await breaker.record_success(await breaker.acquire(key))


async def open_then_wait(breaker: CircuitBreaker, key: str, policy: BreakerPolicy = FAST) -> None:
    """Open the breaker and wait until it is half-open."""
    await fail(breaker, key, policy.failure_threshold)
    await asyncio.sleep(policy.open_seconds + 0.02)


async def rejection(breaker: CircuitBreaker, key: str) -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.acquire(key)
    return caught.value


# Circuit breaker, one process


def test_a_new_breaker_is_closed_and_admits_ordinary_calls() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        permit = await breaker.acquire(key)

        assert await breaker.state(key) is BreakerState.CLOSED
        assert permit.key == key
        assert permit.is_probe is False

    run(scenario)


def test_it_stays_closed_one_failure_below_the_threshold() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await fail(breaker, key, 2)

        assert await breaker.state(key) is BreakerState.CLOSED

    run(scenario)


def test_it_opens_at_the_threshold_and_rejects_with_the_remaining_open_time() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await fail(breaker, key, 3)

        assert await breaker.state(key) is BreakerState.OPEN
        first = await rejection(breaker, key)
        await asyncio.sleep(0.1)
        second = await rejection(breaker, key)
        assert first.key == key
        assert 0.2 <= first.retry_after_seconds <= 0.3
        assert 0.1 <= second.retry_after_seconds <= first.retry_after_seconds - 0.099

    run(scenario)


def test_failures_older_than_the_window_do_not_count() -> None:
    policy = BreakerPolicy(failure_threshold=3, window_seconds=0.2, open_seconds=0.3)

    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await fail(breaker, key, 2)
        for _ in range(5):  # traffic keeps the window's key alive while those two age out
            await asyncio.sleep(0.05)
            await succeed(breaker, key, 1)
        await fail(breaker, key, 2)

        assert await breaker.state(key) is BreakerState.CLOSED
        await fail(breaker, key, 1)
        assert await breaker.state(key) is BreakerState.OPEN

    run(scenario, policy)


def test_it_opens_when_the_failure_ratio_is_exceeded_over_minimum_calls() -> None:
    policy = BreakerPolicy(failure_threshold=100, failure_ratio=0.5, minimum_calls=10, open_seconds=0.3)

    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await succeed(breaker, key, 5)
        await fail(breaker, key, 5)
        assert await breaker.state(key) is BreakerState.CLOSED  # 5 of 10 is not over half

        await fail(breaker, key, 1)  # 6 of 11
        assert await breaker.state(key) is BreakerState.OPEN

    run(scenario, policy)


def test_the_ratio_rule_waits_for_minimum_calls() -> None:
    policy = BreakerPolicy(failure_threshold=100, failure_ratio=0.5, minimum_calls=10, open_seconds=0.3)

    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await succeed(breaker, key, 1)
        await fail(breaker, key, 8)  # 8 of 9 failed, but only 9 calls

        assert await breaker.state(key) is BreakerState.CLOSED
        await fail(breaker, key, 1)
        assert await breaker.state(key) is BreakerState.OPEN

    run(scenario, policy)


def test_after_open_seconds_it_half_opens_and_admits_exactly_the_probe_count() -> None:
    policy = BreakerPolicy(
        failure_threshold=3, open_seconds=0.3, half_open_probes=2, probe_timeout_seconds=5.0
    )

    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await open_then_wait(breaker, key, policy)

        assert await breaker.state(key) is BreakerState.HALF_OPEN
        probes = [await breaker.acquire(key), await breaker.acquire(key)]
        rejected = await rejection(breaker, key)
        assert [probe.is_probe for probe in probes] == [True, True]
        assert 4.9 <= rejected.retry_after_seconds <= 5.0  # until the first probe slot expires

    run(scenario, policy)


def test_a_probe_success_closes_it_and_clears_the_counters() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await open_then_wait(breaker, key)

        await breaker.record_success(await breaker.acquire(key))

        assert await breaker.state(key) is BreakerState.CLOSED
        await fail(breaker, key, 2)
        assert await breaker.state(key) is BreakerState.CLOSED

    run(scenario)


def test_a_probe_failure_reopens_it_for_another_open_period() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await open_then_wait(breaker, key)

        await breaker.record_failure(await breaker.acquire(key))

        assert await breaker.state(key) is BreakerState.OPEN
        assert 0.2 <= (await rejection(breaker, key)).retry_after_seconds <= 0.3
        await asyncio.sleep(0.32)
        assert await breaker.state(key) is BreakerState.HALF_OPEN

    run(scenario)


def test_a_probe_that_never_reports_frees_its_slot_after_the_probe_timeout() -> None:
    policy = BreakerPolicy(failure_threshold=3, open_seconds=0.3, probe_timeout_seconds=0.2)

    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await open_then_wait(breaker, key, policy)
        lost = await breaker.acquire(key)
        assert 0.1 <= (await rejection(breaker, key)).retry_after_seconds <= 0.2

        await asyncio.sleep(0.22)
        probe = await breaker.acquire(key)

        assert (lost.is_probe, probe.is_probe) == (True, True)
        await breaker.record_success(probe)
        assert await breaker.state(key) is BreakerState.CLOSED

    run(scenario, policy)


def test_each_probe_slot_expires_on_its_own() -> None:
    policy = BreakerPolicy(
        failure_threshold=3, open_seconds=0.3, half_open_probes=2, probe_timeout_seconds=0.5
    )

    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await open_then_wait(breaker, key, policy)
        await breaker.acquire(key)
        await asyncio.sleep(0.25)
        await breaker.acquire(key)
        await rejection(breaker, key)

        await asyncio.sleep(0.27)  # the first slot expired, the second has not

        assert (await breaker.acquire(key)).is_probe is True
        await rejection(breaker, key)

    run(scenario, policy)


def test_a_released_probe_frees_its_slot_at_once_without_an_outcome() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await open_then_wait(breaker, key)

        await breaker.release(await breaker.acquire(key))

        assert await breaker.state(key) is BreakerState.HALF_OPEN
        assert (await breaker.acquire(key)).is_probe is True

    run(scenario)


def test_outcomes_of_calls_admitted_before_it_closed_are_ignored() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        slow_calls = [await breaker.acquire(key) for _ in range(3)]
        await open_then_wait(breaker, key)
        await breaker.record_success(await breaker.acquire(key))

        for permit in slow_calls:
            await breaker.record_failure(permit)

        assert await breaker.state(key) is BreakerState.CLOSED

    run(scenario)


def test_failures_of_ordinary_calls_do_not_extend_an_open_breaker() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        in_flight = await breaker.acquire(key)
        await fail(breaker, key, 3)
        await asyncio.sleep(0.32)

        await breaker.record_failure(in_flight)

        assert await breaker.state(key) is BreakerState.HALF_OPEN

    run(scenario)


def test_every_breaker_key_is_namespaced_and_expires() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await succeed(breaker, key, 1)
        await open_then_wait(breaker, key)
        await breaker.acquire(key)  # a probe slot
        await breaker.record_failure(await breaker.acquire(f"{key}-other"))

        names = sorted([name.decode() async for name in client.scan_iter(match=f"breaker:{{{key}}}:*")])
        ttls = [await client.pttl(name) for name in names]

        assert names == [f"breaker:{{{key}}}:probes", f"breaker:{{{key}}}:state"]
        assert all(ttl > 0 for ttl in ttls)
        other = f"breaker:{{{key}-other}}:window"
        assert 0 < await client.pttl(other) <= 33_000
        await client.delete(other)

    run(scenario)


def test_it_fails_open_when_redis_is_unreachable() -> None:
    async def main() -> None:
        client = Redis.from_url("unix:///nonexistent/redis.sock")
        breaker = CircuitBreaker(client, FAST)

        permit = await breaker.acquire("test-provider:unreachable")
        await breaker.record_failure(permit)

        assert (permit.is_probe, permit.generation) == (False, None)
        await client.aclose()

    asyncio.run(main())


def test_fifty_concurrent_acquires_on_a_half_open_breaker_admit_one_probe() -> None:
    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        await open_then_wait(breaker, key)

        results = await asyncio.gather(*(breaker.acquire(key) for _ in range(50)), return_exceptions=True)

        probes = [result for result in results if isinstance(result, Permit)]
        rejected = [result for result in results if isinstance(result, CircuitOpenError)]
        assert [probe.is_probe for probe in probes] == [True]
        assert len(rejected) == 49

    run(scenario)


# Circuit breaker, two processes


def breaker_process(connection: Connection, policy: BreakerPolicy) -> None:
    """Process A: runs breaker commands sent by the test (process B)."""

    async def execute(command: str, key: str) -> str:
        client = Redis.from_url(os.environ["REDIS_URL"])
        breaker = CircuitBreaker(client, policy)
        try:
            if command == "fail":
                await fail(breaker, key, policy.failure_threshold)
            elif command == "acquire":
                try:
                    return "probe" if (await breaker.acquire(key)).is_probe else "admitted"
                except CircuitOpenError:
                    return "rejected"
            return (await breaker.state(key)).value
        finally:
            await client.aclose()

    while (message := connection.recv()) is not None:
        connection.send(asyncio.run(execute(*message)))


def test_the_breaker_opens_half_opens_and_closes_across_two_processes() -> None:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process_a = context.Process(target=breaker_process, args=(theirs, FAST), daemon=True)
    process_a.start()

    def in_process_a(command: str, key: str) -> str:
        ours.send((command, key))
        assert ours.poll(10), "process A did not answer"
        answer: str = ours.recv()
        return answer

    async def scenario(breaker: CircuitBreaker, key: str, client: Redis) -> None:
        assert in_process_a("fail", key) == "open"
        assert await breaker.state(key) is BreakerState.OPEN
        await rejection(breaker, key)

        await asyncio.sleep(0.32)
        assert in_process_a("state", key) == "half_open"
        probe = await breaker.acquire(key)
        assert probe.is_probe is True
        assert in_process_a("acquire", key) == "rejected"  # B holds the only probe slot

        await breaker.record_success(probe)
        assert in_process_a("state", key) == "closed"
        assert in_process_a("acquire", key) == "admitted"

    try:
        run(scenario)
    finally:
        ours.send(None)
        process_a.join(10)
    assert process_a.exitcode == 0


# Retry policy and attempt budget


def test_parse_retry_after_reads_delta_seconds() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("1.5") == 1.5


def test_parse_retry_after_reads_an_http_date() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("Sat, 01 Mar 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sat, 01 Mar 2025 12:00:00 -0000", now=now) == 0.0


def test_parse_retry_after_refuses_garbage_negative_and_past_values() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("inf") is None
    assert parse_retry_after("Sat, 01 Mar 2025 11:59:00 GMT", now=now) is None


def test_retry_delay_waits_exactly_the_retry_after() -> None:
    policy = RetryPolicy(max_attempts=3, max_retry_after=10.0)

    assert retry_delay(policy, 1, 4.5) == 4.5
    assert retry_delay(policy, 2, 10.0) == 10.0
    assert retry_delay(policy, 1, 0.0) == 0.0


def test_retry_delay_refuses_a_retry_after_beyond_the_limit() -> None:
    assert retry_delay(RetryPolicy(max_retry_after=10.0), 1, 10.5) is None


def test_retry_delay_never_retries_after_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3)

    assert retry_delay(policy, 3, None) is None
    assert retry_delay(policy, 3, 1.0) is None
    assert retry_delay(policy, 4, None) is None


def test_retry_delay_jitters_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=0.5)
    rng = random.Random(42)

    for attempt, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)):
        delays = [retry_delay(policy, attempt, None, rng) for _ in range(200)]
        values = [delay for delay in delays if delay is not None]
        assert len(values) == 200
        assert 0 <= min(values) < ceiling * 0.1
        assert ceiling * 0.9 < max(values) <= ceiling


def test_retry_delay_with_a_seeded_random_is_reproducible() -> None:
    policy = RetryPolicy(max_attempts=5)

    first = [retry_delay(policy, 2, None, random.Random(7)) for _ in range(3)]

    assert first == [random.Random(7).uniform(0, 0.2)] * 3


def test_the_attempt_budget_stops_at_three_attempts() -> None:
    budget = AttemptBudget()

    taken = [budget.take() for _ in range(5)]

    assert taken == [True, True, True, False, False]
    assert (budget.used, budget.remaining) == (3, 0)


def test_the_attempt_budget_counts_what_is_left() -> None:
    budget = AttemptBudget(max_attempts=2)
    budget.take()

    assert (budget.used, budget.remaining) == (1, 1)


# Bulkhead


def test_a_third_concurrent_slot_waits_then_is_refused() -> None:
    async def main() -> None:
        bulkhead = Bulkhead(max_concurrent=2, max_wait_seconds=0.1)
        release = asyncio.Event()

        async def hold() -> None:
            async with bulkhead.slot():
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        await asyncio.sleep(0)
        started = time.monotonic()
        with pytest.raises(BulkheadFullError):
            async with bulkhead.slot():
                pass
        waited = time.monotonic() - started

        assert bulkhead.in_use == 2
        assert 0.09 <= waited < 0.5
        release.set()
        await asyncio.gather(*holders)
        assert bulkhead.in_use == 0

    asyncio.run(main())


def test_a_waiting_caller_gets_the_slot_freed_within_max_wait() -> None:
    async def main() -> None:
        bulkhead = Bulkhead(max_concurrent=1, max_wait_seconds=1.0)

        async def hold_briefly() -> None:
            async with bulkhead.slot():
                await asyncio.sleep(0.05)

        holder = asyncio.create_task(hold_briefly())
        await asyncio.sleep(0)
        async with bulkhead.slot():
            assert bulkhead.in_use == 1
        await holder

    asyncio.run(main())


def test_a_cancelled_call_releases_its_slot() -> None:
    async def main() -> None:
        bulkhead = Bulkhead(max_concurrent=1, max_wait_seconds=0.05)

        async def hold_forever() -> None:
            async with bulkhead.slot():
                await asyncio.Event().wait()

        holder = asyncio.create_task(hold_forever())
        await asyncio.sleep(0)
        assert bulkhead.in_use == 1
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder

        assert bulkhead.in_use == 0
        async with bulkhead.slot():
            assert bulkhead.in_use == 1

    asyncio.run(main())


def test_a_caller_cancelled_while_waiting_takes_no_slot() -> None:
    async def main() -> None:
        bulkhead = Bulkhead(max_concurrent=1, max_wait_seconds=5.0)
        release = asyncio.Event()

        async def hold() -> None:
            async with bulkhead.slot():
                await release.wait()

        async def wait_for_slot() -> None:
            async with bulkhead.slot():
                pass

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(wait_for_slot())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        await holder

        assert bulkhead.in_use == 0
        async with bulkhead.slot():
            assert bulkhead.in_use == 1

    asyncio.run(main())


# Deadline


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_deadline_counts_down_and_caps_each_phase() -> None:
    clock = FakeClock()
    deadline = Deadline(30.0, clock=clock)

    clock.now += 25.0

    assert deadline.remaining() == 5.0
    assert deadline.expired is False
    assert deadline.timeout_for(3.0) == 3.0
    assert deadline.timeout_for(10.0) == 5.0


def test_an_expired_deadline_leaves_no_time_for_any_phase() -> None:
    clock = FakeClock()
    deadline = Deadline(30.0, clock=clock)

    clock.now += 31.0

    assert deadline.remaining() == 0.0
    assert deadline.expired is True
    assert deadline.timeout_for(3.0) == 0.0


def test_a_deadline_uses_the_monotonic_clock_by_default() -> None:
    deadline = Deadline(10.0)

    assert 9.9 < deadline.remaining() <= 10.0
