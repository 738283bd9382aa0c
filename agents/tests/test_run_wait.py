"""`wait: true` on POST /api/v1/agents/{id}/runs, through the real server: a waiter
follows its run's stream on the event loop and holds no database connection, so
120 of them leave another tenant's dashboard and API answering at once, and each
gets its finished run or a clear timeout."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django_tenants.utils import tenant_context

from agents import services, waiting
from agents.models import Run
from testing.database import committed
from testing.tenants import TenantFixture

WAITERS = 120
WAIT_SECONDS = 8.0
CANCELLED = 20
# Another tenant's pages and API answer within this while the waiters wait (each
# waiter holding a connection, as before, they waited DATABASE_CONNECTION_WAIT_SECONDS, then failed).
FAST_SECONDS = 2.0
SPEC = {"name": "waited", "steps": [{"id": "answer", "kind": "llm", "prompt": "Say hi."}]}


def create_agent(tenant: TenantFixture) -> int:
    def write() -> int:
        with tenant_context(tenant.tenant):
            return services.create_agent({**SPEC, "name": f"waited-{uuid.uuid4().hex[:8]}"}).pk

    return committed(write)


def runs_of(tenant: TenantFixture, agent_id: int) -> list[int]:
    def read() -> list[int]:
        with tenant_context(tenant.tenant):
            return list(Run.objects.filter(agent_id=agent_id).order_by("pk").values_list("pk", flat=True))

    return committed(read)


def wait_for_runs(tenant: TenantFixture, agent_id: int, count: int) -> list[int]:
    deadline = time.monotonic() + 60
    while len(run_ids := runs_of(tenant, agent_id)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(run_ids) >= count
    return run_ids


def cancel(tenant: TenantFixture, run_ids: list[int]) -> None:
    def write() -> None:
        with tenant_context(tenant.tenant):
            for run in Run.objects.filter(pk__in=run_ids):
                services.cancel_run(run)

    committed(write)


def server_sessions() -> int:
    def read() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            (count,) = cursor.fetchone()
        return int(count)

    return committed(read)


def session_cookie(tenant: TenantFixture) -> str:
    return str(committed(tenant.web_client).cookies["sessionid"].value)


async def wait_calls(
    platform_url: str, tenant: TenantFixture, agent_id: int
) -> list[tuple[float, httpx.Response] | BaseException]:
    headers = {"Host": "localhost", "Authorization": f"Bearer {tenant.admin_key}"}
    limits = httpx.Limits(max_connections=WAITERS)
    async with httpx.AsyncClient(base_url=platform_url, headers=headers, limits=limits, timeout=60) as client:

        async def call() -> tuple[float, httpx.Response]:
            started = time.monotonic()
            response = await client.post(f"/api/v1/agents/{agent_id}/runs", json={"input": {}, "wait": True})
            return time.monotonic() - started, response

        return await asyncio.gather(*(call() for _ in range(WAITERS)), return_exceptions=True)


def timed_get(url: str, **options: Any) -> tuple[float, int]:
    started = time.monotonic()
    status = httpx.get(url, timeout=30, **options).status_code
    return time.monotonic() - started, status


def test_waiters_hold_no_connection_and_another_tenants_dashboard_and_api_stay_fast(
    platform_url: str,
    serving_tenant: TenantFixture,
    django_db_setup: dict[str, TenantFixture],
    settings: Any,
) -> None:
    settings.AGENT_RUNS_QUEUE = f"test-unconsumed-{uuid.uuid4().hex[:8]}"  # the runs do not finish
    settings.AGENT_RUN_WAIT_SECONDS = WAIT_SECONDS
    other = django_db_setup["beta"]
    cookie = session_cookie(other)
    agent_id = create_agent(serving_tenant)
    sessions_before = server_sessions()
    answers: list[tuple[float, httpx.Response] | BaseException] = []
    waiters = threading.Thread(
        target=lambda: answers.extend(asyncio.run(wait_calls(platform_url, serving_tenant, agent_id)))
    )
    waiters.start()
    try:
        # The first runs end as soon as they exist (long before their waits could time
        # out, however slowly the machine starts the others): their waiters answer at once.
        cancelled = wait_for_runs(serving_tenant, agent_id, CANCELLED)[:CANCELLED]
        cancel(serving_tenant, cancelled)
        run_ids = wait_for_runs(serving_tenant, agent_id, WAITERS)
        sessions_while_waiting = server_sessions()
        dashboard = [
            timed_get(
                f"{platform_url}/dashboard/", headers={"Host": other.host}, cookies={"sessionid": cookie}
            )
            for _ in range(5)
        ]
        api = [
            timed_get(
                f"{platform_url}/api/v1/keys",
                headers={"Host": "localhost", "Authorization": f"Bearer {other.admin_key}"},
            )
            for _ in range(5)
        ]
    finally:
        waiters.join(120)
        cancel(serving_tenant, runs_of(serving_tenant, agent_id))
        with redis.Redis.from_url(django_settings.REDIS_URL) as client:
            client.delete(settings.AGENT_RUNS_QUEUE)

    assert sessions_while_waiting <= sessions_before + 3
    assert [status for _, status in dashboard + api] == [200] * 10
    assert max(seconds for seconds, _ in dashboard + api) < FAST_SECONDS, (dashboard, api)
    assert not waiters.is_alive()
    failures = [answer for answer in answers if isinstance(answer, BaseException)]
    assert not failures, failures
    timed = [answer for answer in answers if not isinstance(answer, BaseException)]
    assert [response.status_code for _, response in timed] == [201] * WAITERS
    bodies = {response.json()["id"]: (seconds, response.json()) for seconds, response in timed}
    assert sorted(bodies) == run_ids
    assert [bodies[run_id][1]["status"] for run_id in cancelled] == ["cancelled"] * CANCELLED
    assert not any(bodies[run_id][1]["wait_timed_out"] for run_id in cancelled)
    # Runs are created on threads of their own: the first to commit need not be the lowest ids.
    timed_out = [bodies[run_id] for run_id in run_ids if run_id not in cancelled]
    assert [(body["status"], body["wait_timed_out"]) for _, body in timed_out] == [("queued", True)] * (
        WAITERS - CANCELLED
    )
    assert min(seconds for seconds, _ in timed_out) >= WAIT_SECONDS
    # The cancelled runs' waiters answered when their runs ended, not at their deadline
    # (a machine slow to start the 120 runs makes "at once" later than it is here).
    assert max(bodies[run_id][0] for run_id in cancelled) < min(seconds for seconds, _ in timed_out)


def test_another_tenants_key_cannot_wait_on_an_agent(
    tenant: TenantFixture, outsider_client: Any, settings: Any
) -> None:
    settings.AGENT_RUNS_QUEUE = f"test-unconsumed-{uuid.uuid4().hex[:8]}"
    with tenant_context(tenant.tenant):
        agent = services.create_agent({**SPEC, "name": f"waited-{uuid.uuid4().hex[:8]}"})

    response = outsider_client.post(f"/api/v1/agents/{agent.pk}/runs", {"wait": True}, format="json")

    assert response.status_code == 404
    with tenant_context(tenant.tenant):
        assert Run.objects.filter(agent=agent).count() == 0


def test_the_wait_ends_on_time_even_when_leaving_the_stream_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower whose clean-up hangs (a Redis that stopped answering while the
    stream's group is left) is cut off at the deadline and leaves in the background."""
    left = asyncio.Event()

    async def stalled_follower(schema_name: str, stream_id: str) -> bool:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.shield(asyncio.sleep(1.0))  # leaving the group: cancellation waits for it
            left.set()
        return True  # never reached: the follower is cut off

    monkeypatch.setattr(waiting, "final_event_seen", stalled_follower)

    async def wait() -> tuple[bool, float, int]:
        started = time.monotonic()
        finished = await waiting.until_finished("t_any", "run_any", 0.2)
        elapsed = time.monotonic() - started
        still_leaving = len(waiting.leaving)
        async with asyncio.timeout(5):
            while waiting.leaving:
                await asyncio.sleep(0.01)
        return finished, elapsed, still_leaving

    finished, elapsed, still_leaving = asyncio.run(wait())

    assert (finished, still_leaving, left.is_set()) == (False, 1, True)
    assert 0.2 <= elapsed < 0.8
