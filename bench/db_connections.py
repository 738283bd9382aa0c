"""Database connections under load: persistent (the old CONN_MAX_AGE=60), one per
request with a per-process cap (the default), and psycopg's pool.

    python bench/db_connections.py [--clients 100] [--seconds 10] [--modes persistent,per-request,pool]
                                   [--json PATH]

Needs DATABASE_URL, REDIS_URL and SECRET_KEY (run it under `python -m aiaas.launcher
exec`). The pool mode needs the psycopg-pool package importable (PYTHONPATH may
point at a folder it was installed into); without it the mode is skipped.

For each mode, uvicorn serves aiaas.asgi:application in a child process (with the
launcher's flags), and --clients concurrent clients send, for --seconds, the
issue's flood: GET /api/v1/keys with a well-formed but unknown key (one
database query each, a 401), with one request in five a static file on a
tenant's host. A separate connection samples pg_stat_activity every 50 ms.
Reported: answers per second, p50/p99 latency, 5xx answers, the peak of
sessions the server held, and those still held 2 s after the load stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "db_connections.json"
UNKNOWN_KEY = f"aiaas_000000000000_{'x' * 40}"
# The old settings, restored in the child before Django reads them.
PERSISTENT_SETUP = (
    "import aiaas.settings as s; "
    "s.DATABASES['default'].update(ENGINE='django_tenants.postgresql_backend', CONN_MAX_AGE=60); "
)
MODES: dict[str, tuple[str, dict[str, str]]] = {
    "persistent": (PERSISTENT_SETUP, {}),
    "per-request": ("", {}),
    "pool": ("", {"DATABASE_POOL": "true"}),
}


@dataclass
class Result:
    mode: str
    clients: int
    seconds: float
    answers: int
    answers_per_second: float
    p50_ms: float
    p99_ms: float
    server_errors: int
    transport_errors: int
    peak_sessions: int
    sessions_after_2s: int
    max_connections: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(mode: str, port: int) -> Iterator[str]:
    setup, environ = MODES[mode]
    code = setup + "import sys, uvicorn; sys.exit(uvicorn.main())"
    argv = ["aiaas.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    argv += ["--http", "aiaas.http_protocol:BoundedHeadersProtocol", "--timeout-keep-alive", "5"]
    argv += ["--log-level", "warning"]
    child_env = {**os.environ, **environ, "DATABASE_CONNECTIONS_PER_PROCESS": "20"}
    process = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=REPO_ROOT, env=child_env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn ({mode}) exited with {process.returncode}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def count_sessions(monitor: psycopg.Connection[Any]) -> int:
    row = monitor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchone()
    return int(row[0]) if row else 0


async def sample_sessions(monitor: psycopg.Connection[Any], stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, await asyncio.to_thread(count_sessions, monitor))
        await asyncio.sleep(0.05)
    return peak


async def client_loop(
    client: httpx.AsyncClient, until: float, latencies: list[float], statuses: list[int]
) -> None:
    number = 0
    while time.monotonic() < until:
        number += 1
        if number % 5 == 0:
            request = client.build_request("GET", "/static/css/app.css", headers={"Host": "acme.localhost"})
        else:
            headers = {"Host": "localhost", "Authorization": f"Bearer {UNKNOWN_KEY}"}
            request = client.build_request("GET", "/api/v1/keys", headers=headers)
        started = time.monotonic()
        try:
            response = await client.send(request)
            statuses.append(response.status_code)
        except httpx.TransportError:
            statuses.append(0)
        latencies.append(time.monotonic() - started)


async def load(url: str, clients: int, seconds: float, monitor: psycopg.Connection[Any]) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_sessions(monitor, stop))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        until = time.monotonic() + seconds
        await asyncio.gather(*(client_loop(client, until, latencies, statuses) for _ in range(clients)))
    stop.set()
    return {"latencies": latencies, "statuses": statuses, "peak": await sampler}


def measure(mode: str, clients: int, seconds: float, database_url: str) -> Result:
    with psycopg.connect(database_url, autocommit=True) as monitor, serving(mode, free_port()) as url:
        baseline = count_sessions(monitor)
        outcome = asyncio.run(load(url, clients, seconds, monitor))
        time.sleep(2.0)
        after = count_sessions(monitor) - baseline
        max_connections = int(monitor.execute("SHOW max_connections").fetchone()[0])  # type: ignore[index]
    latencies = sorted(outcome["latencies"])
    statuses = outcome["statuses"]
    return Result(
        mode=mode,
        clients=clients,
        seconds=seconds,
        answers=len(statuses),
        answers_per_second=round(len(statuses) / seconds, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 1),
        p99_ms=round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        server_errors=sum(1 for status in statuses if status >= 500),
        transport_errors=statuses.count(0),
        peak_sessions=outcome["peak"] - baseline,
        sessions_after_2s=after,
        max_connections=max_connections,
    )


def print_table(results: list[Result]) -> None:
    columns = ("mode", "answers/s", "p50 ms", "p99 ms", "5xx", "errors", "peak sessions", "held after 2 s")
    rows = [
        (
            result.mode,
            result.answers_per_second,
            result.p50_ms,
            result.p99_ms,
            result.server_errors,
            result.transport_errors,
            result.peak_sessions,
            result.sessions_after_2s,
        )
        for result in results
    ]
    print_rows(columns, rows, width=14)


def print_rows(columns: tuple[str, ...], rows: Sequence[tuple[object, ...]], width: int) -> None:
    """A plain table: right-aligned cells of `width`, separated by bars."""
    for row in (columns, *rows):
        print(" | ".join(f"{value!s:>{width}}" for value in row))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--modes", default="persistent,per-request,pool")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args()
    subprocess.run([sys.executable, "manage.py", "bootstrap"], cwd=REPO_ROOT, check=True)
    results = []
    for mode in args.modes.split(","):
        if mode == "pool" and not pool_available():
            print("pool: skipped (psycopg_pool is not importable)", file=sys.stderr)
            continue
        results.append(measure(mode, args.clients, args.seconds, os.environ["DATABASE_URL"]))
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": [asdict(result) for result in results],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


def pool_available() -> bool:
    return importlib.util.find_spec("psycopg_pool") is not None


if __name__ == "__main__":
    sys.exit(main())
