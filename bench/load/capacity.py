"""Requests per second per gateway core: Locust at full speed against one platform process.

    python bench/load/capacity.py [--seconds 60] [--users 16] [--json PATH]

Run under the launcher (`make bench-capacity`). Serves the platform (uvicorn,
one process: the /v1 gateway, Django and Channels) and the simulated provider
(no latency), prepares the load tenant (bench/load/tenant.py), then runs the
locustfile headless with no pause between requests for each mix: /v1 only
(ApiUser), WebSocket chats only, the dashboard only, and all of them. The
server process's CPU seconds during each run (psutil) turn its requests into
requests per CPU-second, which is what a core serves when this process has one
to itself; the machine's other load changes the wall-clock rate, not that ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs in the lock file

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "capacity.json"
MIXES = {
    "v1 (chat, stream, embeddings, models, /api)": ["ApiUser"],
    "websocket chats": ["WebSocketChatUser"],
    "dashboard pages": ["DashboardUser"],
    "all (6:2:2)": [],
}


def run_mix(
    name: str, classes: list[str], args: argparse.Namespace, url: str, credentials: Path
) -> dict[str, Any]:
    server = next(
        process
        for process in psutil.Process().children(recursive=True)
        if "aiaas.asgi:application" in " ".join(process.cmdline())
    )
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        before = server.cpu_times()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(REPO_ROOT / "bench" / "load" / "locustfile.py"),
                "--headless",
                "--users",
                str(args.users),
                "--spawn-rate",
                str(args.users),
                "--run-time",
                f"{args.seconds}s",
                "--host",
                url,
                "--only-summary",
                "--loglevel",
                "WARNING",
                *classes,
            ],
            env={
                **os.environ,
                "LOAD_CREDENTIALS": str(credentials),
                "LOAD_REPORT": str(report),
                "LOAD_WAIT_SECONDS": "0,0",
            },
            check=False,
        )
        after = server.cpu_times()
        figures = json.loads(report.read_text())
    cpu_seconds = (after.user - before.user) + (after.system - before.system)
    return {
        "mix": name,
        "users": args.users,
        "seconds": args.seconds,
        "requests": figures["requests"],
        "error_rate": figures["error_rate"],
        "requests_per_second": figures["rps"],
        "server_cpu_seconds": cpu_seconds,
        "requests_per_cpu_second": figures["requests"] / cpu_seconds if cpu_seconds else None,
        "classes": {
            key: {field: value[field] for field in ("requests", "p50_ms", "p95_ms")}
            for key, value in figures["classes"].items()
        },
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
    import django

    django.setup()
    from bench.load.tenant import prepare
    from bench.tenants import serving
    from routing.services import register_local_models, register_simulated_provider

    results = []
    with serving() as (provider_url, platform_url), tempfile.TemporaryDirectory() as folder:
        register_simulated_provider(provider_url)
        register_local_models()
        credentials = Path(folder) / "credentials.json"
        credentials.write_text(json.dumps(prepare("load")))
        for name, classes in MIXES.items():
            results.append(run_mix(name, classes, args, platform_url, credentials))
            print(json.dumps(results[-1]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"benchmark": "capacity", "cpus": os.cpu_count(), "mixes": results}, indent=2)
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
