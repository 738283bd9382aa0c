"""Overload with degrade switches: the simulated provider slows down mid-run, the
automatic switch engages and sheds low-priority keys, and high-priority traffic
keeps its latency objective.

    python bench/degrade.py [--quick] [--json PATH] [--svg PATH]

Needs DATABASE_URL, REDIS_URL and SECRET_KEY (run it under
`python -m aiaas.launcher exec --`).

Setup: one simulated provider (`manage.py simulated_provider`, BASE_MS of
latency), a registry model on it whose provider takes at most CAPACITY
concurrent calls (the bulkhead; a call waits up to 1 s for a slot, then 503),
our platform under uvicorn (one worker), and a bench tenant with a high- and a
low-priority key. The evaluator runs in this process every second
(`capacity.tasks.evaluate`, the task beat sends) with the thresholds below on
`upstream_p95_ms`; the other signals are set out of reach, since no Celery
worker flushes the ledger here. Everything is removed at the end and the level
returned to automatic control.

Load: open loop, HIGH_RPS requests per second on the high-priority key and
LOW_RPS on the low-priority one, whatever the answers take. At SLOW_AT the
provider's latency rises to SLOW_MS (POST /_sim/pace): the demand (rate x
latency) is then above CAPACITY, so without shedding every request queues for a
slot. Objective: high-priority p95 at most SLOW_MS + OBJECTIVE_MARGIN_MS while the
provider is slow and the switch is engaged (from DRAIN_SECONDS after it engaged:
requests already queued for a slot then are reported in a phase of their own).
At RECOVER_AT the latency returns to BASE_MS.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.gateway import Processes, free_port, setup_django, wait_ready  # noqa: E402

RUN_DIR = REPO_ROOT / "bench" / "results" / "degrade-run"
DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "degrade.json"
DEFAULT_SVG_PATH = REPO_ROOT / "bench" / "charts" / "degrade.svg"
TENANT_SLUG = f"bench-dg-{os.getpid()}"
PROVIDER_SLUG = "bench-degrade-sim"
MODEL_ID = "bench-degrade-small"
BENCH_USAGE_STREAM = f"usage:events:bench-degrade-{os.getpid()}"
BASE_MS = 100
SLOW_MS = 1000
CAPACITY = 12
HIGH_RPS = 4
LOW_RPS = 12
OBJECTIVE_MARGIN_MS = 250
# New connections and the key cache's first misses; not a phase of the experiment.
WARMUP_SECONDS = 3.0
# Requests already waiting for a provider slot when the switch engages finish within
# about two slow calls; the objective is judged on requests sent after them.
DRAIN_SECONDS = 2 * SLOW_MS / 1000
ENGAGED_ROW = 4
MAX_TOKENS = 16
OUT_OF_REACH = [1e12, 1e12]
SETTINGS = {
    "DEGRADE_THRESHOLDS": json.dumps(
        {
            "upstream_p95_ms": {"degraded": [600, 300], "critical": [5000, 3000]},
            **{
                name: {"degraded": OUT_OF_REACH, "critical": OUT_OF_REACH}
                for name in (
                    "gateway_overhead_p95_ms",
                    "provider_error_rate",
                    "celery_queue_depth",
                    "redis_memory_ratio",
                    "usage_flush_lag_seconds",
                )
            },
        }
    ),
    "DEGRADE_MIN_DWELL_SECONDS": "10",
    "DEGRADE_EVALUATE_SECONDS": "1",
    "DEGRADE_SIGNAL_WINDOW_SECONDS": "10",
    "PROVIDER_TENANT_SHARE": "1.0",
    "USAGE_STREAM": BENCH_USAGE_STREAM,
}


@dataclass(frozen=True)
class Timeline:
    slow_at: float
    recover_at: float
    end: float


FULL = Timeline(slow_at=20, recover_at=60, end=100)
QUICK = Timeline(slow_at=10, recover_at=35, end=65)


@dataclass
class Sample:
    at: float  # seconds since the start
    priority: str
    status: int
    latency_ms: float
    degraded: str


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    levels: list[tuple[float, str]] = field(default_factory=list)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a shorter timeline")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    parser.add_argument("--svg", type=Path, default=DEFAULT_SVG_PATH)
    return parser.parse_args(argv)


# Setup


def register_model(simulator_url: str) -> None:
    from routing.models import Provider, ProviderModel

    provider, _ = Provider.objects.update_or_create(
        slug=PROVIDER_SLUG,
        defaults={
            "name": "Bench degrade simulator",
            "base_url": f"{simulator_url}/v1",
            "auth_style": "none",
            "is_simulated": True,
            "is_enabled": True,
            "max_concurrent_calls": CAPACITY,
            "first_token_timeout_seconds": 20.0,
            "total_timeout_seconds": 30.0,
        },
    )
    ProviderModel.objects.update_or_create(
        model_id=MODEL_ID,
        defaults={
            "provider": provider,
            "upstream_model": "sim-small",
            "tier": 98,
            "context_window": 4_096,
            "input_price_per_million": 0,
            "output_price_per_million": 0,
            "is_enabled": True,
        },
    )


def provision() -> dict[str, str]:
    """The bench tenant's keys by priority."""
    from bench.gateway import provision_bench_tenant
    from tenants.models import ApiKeyPriority, ApiKeyScope, Tenant
    from tenants.services import create_api_key

    provision_bench_tenant(TENANT_SLUG)
    tenant = Tenant.objects.get(slug=TENANT_SLUG)
    return {
        priority: create_api_key(
            tenant, name=f"bench {priority}", scopes=[ApiKeyScope.INFERENCE], priority=priority
        ).secret
        for priority in (ApiKeyPriority.HIGH, ApiKeyPriority.LOW)
    }


def clean_up() -> None:
    import redis
    from django.conf import settings

    from bench.provisioning import remove_tenants
    from capacity import services
    from capacity.levels import Level
    from routing.models import Provider, ProviderModel

    services.set_by_staff(Level.NORMAL, reason="bench/degrade.py ended", set_by="bench")
    ProviderModel.objects.filter(model_id=MODEL_ID).delete()
    Provider.objects.filter(slug=PROVIDER_SLUG).delete()
    for failure in remove_tenants([TENANT_SLUG]):
        print(f"cleanup failed: {failure}", file=sys.stderr)
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        client.delete(BENCH_USAGE_STREAM, f"{BENCH_USAGE_STREAM}:dead")


def start_servers(processes: Processes) -> tuple[str, str]:
    """The simulator's and our platform's base URLs."""
    sim_port, our_port = free_port(), free_port()
    simulator = [sys.executable, "manage.py", "simulated_provider", "--port", str(sim_port)]
    simulator += ["--latency-ms", str(BASE_MS), "--ttft-ms", "0", "--tokens-per-second", "0"]
    processes.start("simulator", simulator)
    simulator_url = f"http://127.0.0.1:{sim_port}"
    wait_ready(processes, "simulator", f"{simulator_url}/v1/models")
    ours = [sys.executable, "-m", "uvicorn", "aiaas.asgi:application", "--host", "127.0.0.1"]
    ours += ["--port", str(our_port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    processes.start("ours", ours, {**os.environ, **SETTINGS})
    return simulator_url, f"http://127.0.0.1:{our_port}"


# The run


def evaluate_every_second(run: Run, started: float, stop: threading.Event) -> None:
    """What beat and the platform worker do in production, in a thread of this process."""
    from capacity import state, tasks

    while not stop.wait(1.0):
        tasks.evaluate()
        run.levels.append((time.monotonic() - started, state.current().level.value))


async def one_request(
    client: httpx.AsyncClient, url: str, key: str, priority: str, started: float, run: Run
) -> None:
    sent = time.monotonic()
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hello."}], "max_tokens": MAX_TOKENS}
    try:
        response = await client.post(url, json=body, headers={"authorization": f"Bearer {key}"})
        status, degraded = response.status_code, response.headers.get("x-aiaas-degraded", "")
    except httpx.HTTPError:
        status, degraded = 0, ""
    run.samples.append(Sample(sent - started, priority, status, (time.monotonic() - sent) * 1000, degraded))


async def open_loop(
    client: httpx.AsyncClient,
    url: str,
    key: str,
    priority: str,
    rps: int,
    started: float,
    end: float,
    run: Run,
) -> None:
    pending: set[asyncio.Task[None]] = set()
    interval, sent = 1 / rps, 0
    while (now := time.monotonic() - started) < end:
        while sent * interval <= now:
            task = asyncio.create_task(one_request(client, url, key, priority, started, run))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(interval / 2)
    if pending:
        await asyncio.wait(pending)


async def pace_provider(simulator_url: str, timeline: Timeline, started: float) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for at, latency in ((timeline.slow_at, SLOW_MS), (timeline.recover_at, BASE_MS)):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
            (await client.post(f"{simulator_url}/_sim/pace", json={"latency_ms": latency})).raise_for_status()


async def drive(platform_url: str, simulator_url: str, keys: dict[str, str], timeline: Timeline) -> Run:
    run, stop = Run(), threading.Event()
    started = time.monotonic()
    evaluator = threading.Thread(target=evaluate_every_second, args=(run, started, stop), daemon=True)
    evaluator.start()
    url = f"{platform_url}/v1/chat/completions"
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    try:
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            await asyncio.gather(
                open_loop(client, url, keys["high"], "high", HIGH_RPS, started, timeline.end, run),
                open_loop(client, url, keys["low"], "low", LOW_RPS, started, timeline.end, run),
                pace_provider(simulator_url, timeline, started),
            )
    finally:
        stop.set()
        evaluator.join()
    return run


# Figures


def percentile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(len(ordered) * percent / 100) - 1)]


def first_at(levels: list[tuple[float, str]], after: float, wanted: set[str]) -> float | None:
    return next((at for at, level in levels if at >= after and level in wanted), None)


def phases(timeline: Timeline, run: Run) -> list[tuple[str, float, float]]:
    engaged = first_at(run.levels, timeline.slow_at, {"degraded", "critical"}) or timeline.recover_at
    settled = min(engaged + DRAIN_SECONDS, timeline.recover_at)
    recovered = first_at(run.levels, timeline.recover_at, {"normal"}) or timeline.end
    return [
        ("warm-up", 0.0, WARMUP_SECONDS),
        ("normal, fast provider", WARMUP_SECONDS, timeline.slow_at),
        ("slow provider, switch not yet engaged", timeline.slow_at, engaged),
        ("engaged, queue draining", engaged, settled),
        ("slow provider, switch engaged", settled, timeline.recover_at),
        ("fast again, still degraded", timeline.recover_at, recovered),
        ("recovered", recovered, timeline.end),
    ]


def summarize(timeline: Timeline, run: Run) -> dict[str, Any]:
    rows = []
    for name, start, end in phases(timeline, run):
        window = [s for s in run.samples if start <= s.at < end]
        row: dict[str, Any] = {"phase": name, "from_s": round(start, 1), "to_s": round(end, 1)}
        for priority in ("high", "low"):
            mine = [s for s in window if s.priority == priority]
            served = [s.latency_ms for s in mine if s.status == 200]
            row[priority] = {
                "requests": len(mine),
                "served": len(served),
                "shed": sum(1 for s in mine if s.status == 503 and s.degraded),
                "failed": sum(1 for s in mine if s.status != 200 and not (s.status == 503 and s.degraded)),
                "p50_ms": percentile(served, 50),
                "p95_ms": percentile(served, 95),
            }
        rows.append(row)
    engaged = first_at(run.levels, timeline.slow_at, {"degraded", "critical"})
    recovered = first_at(run.levels, timeline.recover_at, {"normal"})
    objective = SLOW_MS + OBJECTIVE_MARGIN_MS
    high_engaged = rows[ENGAGED_ROW]["high"]["p95_ms"]
    return {
        "phases": rows,
        "engaged_after_s": None if engaged is None else round(engaged - timeline.slow_at, 1),
        "recovered_after_s": None if recovered is None else round(recovered - timeline.recover_at, 1),
        "level_changes": changes_of(run.levels),
        "objective_high_p95_ms": objective,
        "objective_met": high_engaged is not None and high_engaged <= objective,
    }


def changes_of(levels: list[tuple[float, str]]) -> list[tuple[float, str]]:
    changes, last = [], "normal"
    for at, level in levels:
        if level != last:
            changes.append((round(at, 1), level))
            last = level
    return changes


def print_table(summary: dict[str, Any]) -> None:
    high = f"{'high n':>6} {'p50':>6} {'p95':>6} {'fail':>4}"
    header = f"{'phase':<40} {'s':>11} | {high} | {'low n':>5} {'shed':>6} {'fail':>4}"
    print(header)
    print("-" * len(header))
    for row in summary["phases"]:
        high, low = row["high"], row["low"]
        shed = f"{100 * low['shed'] / low['requests']:.0f}%" if low["requests"] else "-"
        print(
            f"{row['phase']:<40} {row['from_s']:>5.0f}-{row['to_s']:<5.0f} | {high['requests']:>6} "
            f"{ms(high['p50_ms']):>6} {ms(high['p95_ms']):>6} {high['failed']:>4} | "
            f"{low['requests']:>5} {shed:>6} {low['failed']:>4}"
        )
    print(f"level changes (s, level): {summary['level_changes']}")
    print(
        f"switch engaged {summary['engaged_after_s']} s after the slowdown, back to normal "
        f"{summary['recovered_after_s']} s after the provider recovered; high-priority p95 while "
        f"engaged within {summary['objective_high_p95_ms']} ms: {summary['objective_met']}"
    )


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


# The chart


def chart_svg(timeline: Timeline, run: Run, width: int = 760, height: int = 300) -> str:
    """High-priority p95 and the low-priority shed share per second, over the level."""
    left, right, top, bottom = 56, 56, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    seconds = int(timeline.end)
    high_p95 = []
    shed_share = []
    for second in range(seconds):
        window = [s for s in run.samples if second <= s.at < second + 1]
        served = [s.latency_ms for s in window if s.priority == "high" and s.status == 200]
        high_p95.append(percentile(served, 95))
        low = [s for s in window if s.priority == "low"]
        shed_share.append(sum(1 for s in low if s.status == 503) / len(low) if low else None)
    top_ms = max([value for value in high_p95 if value is not None] + [SLOW_MS + OBJECTIVE_MARGIN_MS]) * 1.1

    def x(at: float) -> float:
        return left + plot_w * at / seconds

    def y_ms(value: float) -> float:
        return top + plot_h * (1 - value / top_ms)

    def y_share(value: float) -> float:
        return top + plot_h * (1 - value)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    parts += level_bands(run, x, top, plot_h, seconds)
    slow_x, slow_width = x(timeline.slow_at), x(timeline.recover_at) - x(timeline.slow_at)
    parts.append(
        f'<rect x="{slow_x:.1f}" y="{top - 6}" width="{slow_width:.1f}" height="4" fill="#555"/>'
        f'<text x="{slow_x:.1f}" y="{top - 9}">provider slowed to {SLOW_MS} ms</text>'
    )
    objective = SLOW_MS + OBJECTIVE_MARGIN_MS
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{y_ms(objective):.1f}" y2="{y_ms(objective):.1f}" '
        f'stroke="#1f77b4" stroke-dasharray="4 3"/><text x="{left + 4}" y="{y_ms(objective) - 4:.1f}" '
        f'fill="#1f77b4">high-priority objective {objective} ms</text>'
    )
    parts.append(
        polyline([(x(i + 0.5), y_ms(v)) for i, v in enumerate(high_p95) if v is not None], "#1f77b4")
    )
    parts.append(
        polyline([(x(i + 0.5), y_share(v)) for i, v in enumerate(shed_share) if v is not None], "#d62728")
    )
    parts += axes(left, top, plot_w, plot_h, seconds, top_ms, x)
    parts.append(
        f'<text x="{left}" y="{height - 6}" fill="#1f77b4">— high-priority p95 (ms, left)</text>'
        f'<text x="{left + 220}" y="{height - 6}" fill="#d62728">'
        "— low-priority requests shed (share, right)</text>"
        f'<text x="{left + 480}" y="{height - 6}" fill="#b8860b">▮ level degraded</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def level_bands(run: Run, x: Any, top: float, plot_h: float, seconds: int) -> list[str]:
    """One shaded band per stretch of time above normal."""
    colours = {"degraded": "#fdf1c7", "critical": "#f8d0d0"}
    edges = [(0.0, "normal"), *changes_of(run.levels), (float(seconds), "normal")]
    return [
        f'<rect x="{x(at):.1f}" y="{top}" width="{max(0.0, x(until) - x(at)):.1f}" '
        f'height="{plot_h}" fill="{colours[level]}"/>'
        for (at, level), (until, _) in itertools.pairwise(edges)
        if level in colours
    ]


def polyline(points: list[tuple[float, float]], colour: str) -> str:
    coordinates = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return f'<polyline points="{coordinates}" fill="none" stroke="{colour}" stroke-width="1.5"/>'


def axes(left: int, top: int, plot_w: int, plot_h: int, seconds: int, top_ms: float, x: Any) -> list[str]:
    bottom = top + plot_h
    parts = [
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#333"/>',
        f'<line x1="{left + plot_w}" x2="{left + plot_w}" y1="{top}" y2="{bottom}" stroke="#333"/>',
        f'<line x1="{left}" x2="{left + plot_w}" y1="{bottom}" y2="{bottom}" stroke="#333"/>',
    ]
    for second in range(0, seconds + 1, 10):
        parts.append(f'<text x="{x(second):.1f}" y="{bottom + 14}" text-anchor="middle">{second}s</text>')
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        y = bottom - plot_h * fraction
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{top_ms * fraction:.0f}</text>')
        parts.append(f'<text x="{left + plot_w + 4}" y="{y + 4:.1f}">{fraction:.0%}</text>')
    return parts


# Main


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    os.environ.update(SETTINGS)
    setup_django()
    from django.core.management import call_command

    call_command("bootstrap", verbosity=0)  # a fresh clone's database: migrated, the tenant template
    timeline = QUICK if args.quick else FULL
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    processes = Processes(RUN_DIR)
    try:
        simulator_url, platform_url = start_servers(processes)
        register_model(simulator_url)
        keys = provision()
        wait_ready(
            processes, "ours", f"{platform_url}/v1/models", {"authorization": f"Bearer {keys['high']}"}
        )
        print(
            f"load: {HIGH_RPS} high + {LOW_RPS} low req/s; provider capacity {CAPACITY} calls; "
            f"{BASE_MS} ms, {SLOW_MS} ms from {timeline.slow_at:.0f} s to {timeline.recover_at:.0f} s"
        )
        run = asyncio.run(drive(platform_url, simulator_url, keys, timeline))
    finally:
        processes.stop_all()
        clean_up()
    summary = summarize(timeline, run)
    print_table(summary)
    result = {
        "when": datetime.now(UTC).isoformat(),
        "setup": {
            "base_ms": BASE_MS,
            "slow_ms": SLOW_MS,
            "capacity": CAPACITY,
            "high_rps": HIGH_RPS,
            "low_rps": LOW_RPS,
            "timeline": asdict(timeline),
            "settings": SETTINGS,
            "cpus": os.cpu_count(),
        },
        **summary,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(chart_svg(timeline, run))
    print(f"wrote {args.json} and {args.svg}")
    return 0 if summary["objective_met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
