"""Database connections (docs/decisions/0012): none kept between requests, a cap
per process, static files without a query, and recovery when PostgreSQL drops
every connection.

A real restart of the embedded PostgreSQL would cut every test run sharing it,
so `pg_terminate_backend` on every other session of this run's database stands
in for one: the server's sessions end the same way (FATAL
"terminating connection due to administrator command"), and new ones can be
opened at once, as after a restart.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import OperationalError, connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from testing.database import committed
from testing.tenants import TenantFixture

UNKNOWN_KEY = f"aiaas_000000000000_{'x' * 40}"


@pytest.mark.parametrize("host", ["alpha.localhost", "localhost", "unknown.localhost"])
def test_a_static_file_request_makes_no_database_query(db: None, host: str) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = Client(HTTP_HOST=host).get("/static/css/app.css")
        content = b"".join(response.streaming_content)  # type: ignore[attr-defined]

    assert response.status_code == 200
    assert content
    assert queries.captured_queries == []


def count_other_sessions(statement: str, params: tuple[Any, ...] = ()) -> int:
    """Run `statement` (a count over this database's other sessions) on a connection of its
    own: in this test's transaction pg_stat_activity would be one snapshot."""

    def run() -> int:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            (count,) = cursor.fetchone()
        return int(count)

    return committed(run)


def other_sessions() -> int:
    """Sessions on this run's database, but for the one counting."""
    return count_other_sessions(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )


def database_now() -> Any:
    def run() -> Any:
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]

    return committed(run)


def key_lookup_sessions_since(started: Any) -> int:
    """Sessions opened since `started` whose last statement read the API keys."""
    return count_other_sessions(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_start >= %s AND query ILIKE %s",
        (started, "%tenants_apikey%"),
    )


def terminate_other_sessions(spared_pid: int) -> int:
    """End every session on this run's database but `spared_pid` (this test's own)."""
    return count_other_sessions(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND pid <> %s",
        (spared_pid,),
    )


def pooled() -> bool:
    return bool(settings.DATABASES["default"]["OPTIONS"].get("pool"))


def own_session() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return int(pid)


def api_keys(platform_url: str, key: str) -> int:
    headers = {"Host": "localhost", "Authorization": f"Bearer {key}"}
    return httpx.get(f"{platform_url}/api/v1/keys", headers=headers, timeout=15).status_code


def v1_models(platform_url: str, key: str) -> int:
    return httpx.get(
        f"{platform_url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=15
    ).status_code


def test_no_connection_is_kept_after_a_burst_of_requests(
    platform_url: str, serving_tenant: TenantFixture
) -> None:
    before = other_sessions()
    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(lambda _: api_keys(platform_url, UNKNOWN_KEY), range(60)))
    assert statuses == [401] * 60  # each looked the key up in PostgreSQL

    # With DATABASE_POOL the pool keeps its connections open (never more than its size).
    kept = settings.DATABASE_CONNECTIONS_PER_PROCESS if pooled() else 0
    deadline = time.monotonic() + 3
    while (after := other_sessions()) > before + kept and time.monotonic() < deadline:
        time.sleep(0.05)

    assert after <= before + kept


def test_sessions_stay_within_the_cap_while_a_burst_is_served(
    platform_url: str, serving_tenant: TenantFixture
) -> None:
    """Under ASGI each request's sync code runs on a thread of its own: sampled every
    20 ms during 60 concurrent requests (more than the cap), the server's sessions never pass the process's
    cap (+1: asgiref's shared thread keeps one). Only the sessions that looked a key up
    since the burst began are counted: the test process's other threads (workers, flushers)
    open sessions of their own at any moment."""
    started, peak, done = database_now(), 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, key_lookup_sessions_since(started))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=60) as pool:
            statuses = list(
                pool.map(lambda i: api_keys(platform_url, f"aiaas_{i:012d}_{'y' * 40}"), range(120))
            )
    finally:
        done.set()
        sampler.join()

    assert statuses == [401] * 120
    assert 0 < peak <= settings.DATABASE_CONNECTIONS_PER_PROCESS + 1


def test_api_and_v1_answer_again_at_once_after_postgres_drops_every_connection(
    platform_url: str, serving_tenant: TenantFixture
) -> None:
    created = httpx.post(
        f"{platform_url}/api/v1/keys",
        json={"name": f"after-restart-{time.monotonic_ns()}", "scopes": ["inference"]},
        headers={"Host": "localhost", "Authorization": f"Bearer {serving_tenant.admin_key}"},
        timeout=15,
    )
    assert created.status_code == 201, created.text
    unused_key = created.json()["api_key"]  # not in the gateway's key cache yet
    answers: list[tuple[float, float, str, int]] = []  # started, finished, path, status
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            for name, call, key in (
                ("api", api_keys, serving_tenant.admin_key),
                ("v1", v1_models, UNKNOWN_KEY),  # unknown keys are looked up every time
            ):
                started = time.monotonic()
                try:
                    status = call(platform_url, key)
                except httpx.HTTPError:
                    status = 0
                answers.append((started, time.monotonic(), name, status))

    workers = [threading.Thread(target=load) for _ in range(6)]
    for worker in workers:
        worker.start()
    time.sleep(2.0)
    test_session = own_session()
    first_cut = time.monotonic()
    terminated = 0
    while time.monotonic() - first_cut < 1.0:  # cut again and again: some sessions are mid-request
        terminated += terminate_other_sessions(spared_pid=test_session)
        terminated_at = time.monotonic()
        time.sleep(0.05)
    time.sleep(3.0)
    stop.set()
    for worker in workers:
        worker.join(30)

    expected = {"api": 200, "v1": 401}
    before = [(name, status) for _, finished, name, status in answers if finished < first_cut]
    # Requests in flight at a cut may fail; none started after the last one.
    after = [(name, status) for started, _, name, status in answers if started > terminated_at]
    assert len(before) >= 4
    assert [answer for answer in before if answer[1] != expected[answer[0]]] == []
    assert terminated >= 1
    assert len(after) >= 10
    assert [answer for answer in after if answer[1] != expected[answer[0]]] == []
    assert v1_models(platform_url, unused_key) == 200
    assert httpx.get(f"{platform_url}/readyz", timeout=15).json()["checks"]["postgres"] == "ok"


def test_a_process_opens_no_more_connections_than_its_cap(db: None, settings: Any) -> None:
    if pooled():
        pytest.skip("with DATABASE_POOL the pool's max_size is the cap")
    settings.DATABASE_CONNECTIONS_PER_PROCESS = 2
    settings.DATABASE_CONNECTION_WAIT_SECONDS = 0.3
    release = threading.Event()
    holding = threading.Barrier(3)

    def hold_a_connection() -> None:
        connections["default"].ensure_connection()
        holding.wait()
        release.wait(10)
        connections["default"].close()

    def open_one_more() -> str:
        try:
            connections["default"].ensure_connection()
        except OperationalError as error:
            return str(error)
        finally:
            connections["default"].close()
        return "opened"

    holders = [threading.Thread(target=hold_a_connection) for _ in range(2)]
    for holder in holders:
        holder.start()
    holding.wait()
    with ThreadPoolExecutor(max_workers=1) as pool:
        refused = pool.submit(open_one_more).result()
    release.set()
    for holder in holders:
        holder.join(10)
    with ThreadPoolExecutor(max_workers=1) as pool:
        opened = pool.submit(open_one_more).result()

    assert refused == "All 2 database connections of this process are in use."
    assert opened == "opened"
