"""What the cross-process provider cap adds to a /v1 call: one slot taken and
released (gateway/resilience/shared_bulkhead.py) against the per-process bulkhead
alone, sequentially on one connection, the two interleaved.

    python -m aiaas.launcher exec -- .venv/bin/python bench/shared_bulkhead.py [--calls N]

Needs REDIS_URL (the launcher's embedded Redis is on a Unix socket; a Redis over
TCP adds its network round trip twice).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
os.environ.setdefault("SECRET_KEY", "bench-shared-bulkhead")

import django

django.setup()

import redis.asyncio as aioredis  # noqa: E402
from django.conf import settings  # noqa: E402

from gateway.resilience import Bulkhead, SharedBulkhead  # noqa: E402


async def measure(calls: int) -> dict[str, list[float]]:
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    local, shared = Bulkhead(64, 1.0), SharedBulkhead(client, "bench", 64, 1.0)
    timings: dict[str, list[float]] = {"process": [], "shared": []}
    try:
        for _ in range(calls):
            started = time.perf_counter()
            async with local.slot():
                pass
            timings["process"].append(time.perf_counter() - started)
            started = time.perf_counter()
            async with local.slot(), shared.slot(30):
                pass
            timings["shared"].append(time.perf_counter() - started)
    finally:
        await client.aclose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    timings = asyncio.run(measure(parser.parse_args().calls))
    for name, values in timings.items():
        ordered = sorted(values)
        p50, p99 = statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99)] * 1000
        print(f"{name:8} p50 {p50:.3f} ms  p99 {p99:.3f} ms")


if __name__ == "__main__":
    main()
