"""PostgreSQL restarted under load: how long until /api and /v1 answer again,
without restarting the platform.

    python bench/pg_restart.py [--clients 50] [--seconds 12] [--restart-at 4] [--json PATH]

Runs on the embedded PostgreSQL (`python -m aiaas.launcher exec --` with
DATABASE_URL unset, or plain with it unset): uvicorn serves the platform in a
child process (the default, one connection per request), --clients clients
send requests that each need the database (a random well-formed key on
`GET /api/v1/keys` and `GET /v1/models`: an unknown prefix is a query, then
401), and after --restart-at seconds the server is restarted for real
(`pg_ctl restart -m fast`: every connection is cut, the postmaster stops and
starts again). Reported per path: answers before, during and after the
restart, 5xx answers, and the seconds from the restart until the first
correct answer (401) and until the last error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import string
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.db_connections import free_port, print_rows, serving  # noqa: E402

DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "pg_restart.json"
PATHS = ("/api/v1/keys", "/v1/models")
ALPHABET = string.ascii_letters + string.digits


@dataclass
class PathResult:
    path: str
    answers: int = 0
    correct: int = 0  # 401: the key was looked up and refused
    server_errors: int = 0
    transport_errors: int = 0
    first_correct_after_restart_s: float | None = None
    last_error_after_restart_s: float | None = None
    events: list[tuple[float, int]] = field(default_factory=list, repr=False)


def random_key() -> str:
    prefix = "".join(secrets.choice(ALPHABET) for _ in range(12))
    return f"aiaas_{prefix}_{'y' * 40}"


async def client_loop(client: httpx.AsyncClient, path: str, until: float, result: PathResult) -> None:
    while time.monotonic() < until:
        headers = {"Host": "localhost", "Authorization": f"Bearer {random_key()}"}
        try:
            status = (await client.get(path, headers=headers)).status_code
        except httpx.TransportError:
            status = 0
        result.events.append((time.monotonic(), status))


def restart_postgres(pgdata: Path) -> float:
    """`pg_ctl restart -m fast` on the embedded server; when it was issued."""
    import pgserver
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made at import time

    server = pgserver.get_server(pgdata, cleanup_mode=None)
    issued = time.monotonic()
    pg_ctl(["-w", "restart", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
    return issued


async def run_load(
    url: str, clients: int, seconds: float, restart_at: float, pgdata: Path
) -> list[PathResult]:
    """Load both paths, restart PostgreSQL `restart_at` seconds in; each path's result."""
    results = {path: PathResult(path) for path in PATHS}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=15) as client:
        until = time.monotonic() + seconds
        paths = [PATHS[number % len(PATHS)] for number in range(clients)]
        load = asyncio.gather(*(client_loop(client, path, until, results[path]) for path in paths))
        await asyncio.sleep(restart_at)
        issued = await asyncio.to_thread(restart_postgres, pgdata)
        await load
    summarize(results, issued)
    return list(results.values())


def summarize(results: dict[str, PathResult], issued: float) -> None:
    for result in results.values():
        result.answers = len(result.events)
        result.correct = sum(1 for _, status in result.events if status == 401)
        result.server_errors = sum(1 for _, status in result.events if status >= 500)
        result.transport_errors = sum(1 for _, status in result.events if status == 0)
        after = [(at - issued, status) for at, status in result.events if at >= issued]
        correct = [offset for offset, status in after if status == 401]
        errors = [offset for offset, status in after if status != 401]
        result.first_correct_after_restart_s = round(min(correct), 2) if correct else None
        result.last_error_after_restart_s = round(max(errors), 2) if errors else None


def print_table(results: list[PathResult]) -> None:
    columns = ("path", "answers", "401", "5xx", "transport", "first 401 after", "last error after")
    rows = [
        (
            result.path,
            result.answers,
            result.correct,
            result.server_errors,
            result.transport_errors,
            result.first_correct_after_restart_s,
            result.last_error_after_restart_s,
        )
        for result in results
    ]
    print_rows(columns, rows, width=16)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--restart-at", type=float, default=4.0)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args()
    pgdata = Path(os.environ.get("AIAAS_DATA_DIR", REPO_ROOT / ".data")) / "postgres"
    if not (pgdata / "postmaster.pid").exists():
        print(f"needs the embedded PostgreSQL running in {pgdata}", file=sys.stderr)
        return 2
    subprocess.run([sys.executable, "manage.py", "bootstrap"], cwd=REPO_ROOT, check=True)
    with serving("per-request", free_port()) as url:
        results = asyncio.run(run_load(url, args.clients, args.seconds, args.restart_at, pgdata))
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "arguments": {"clients": args.clients, "seconds": args.seconds, "restart_at": args.restart_at},
        "results": [{k: v for k, v in asdict(result).items() if k != "events"} for result in results],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
