"""WebSockets under load: many concurrent subscribers, a share of them slow readers.

    python bench/realtime.py [--connections 1000] [--slow-share 0.1] [--seconds 20] [--quick]

Needs DATABASE_URL, REDIS_URL and SECRET_KEY (run it under
`python -m aiaas.launcher exec --`, or `make bench-realtime`).

Setup: a bench tenant (limits checked, never binding) and our platform under
uvicorn (one worker, its default websockets-sansio protocol, so uvicorn's write
flow control is what pushes back on slow readers). Then:

1. Streams: one stream per connection, each subscribed on
   /ws/v1/streams/<id> by client processes (the `websockets` library). This
   process publishes `{"type": "chunk", "delta": ...}` to every stream at
   --rate events per second each, for --seconds. Each delta is the publish
   time (padded to --delta-bytes), so a reader knows every delta's latency
   (publish to receipt) even when several were coalesced into one message.
   Slow readers (--slow-share) sleep --slow-read-ms after each message and
   connect with a 4 KB receive buffer, so their link backs up and the
   server's write flow control and coalescing come into play. The last event of each stream is final;
   a reader checks it got every delta, in order, and the final event.
2. Chat: --chats concurrent /ws/v1/chat/completions through the gateway to a
   simulated provider pacing --chat-tokens-per-second: time to first chunk,
   whole completion, done events.

Reported: delta latency p50/p99 for normal and slow readers, messages and
events per second, coalesced deltas, close codes, the server's memory per
connection (its RSS with every connection open minus its RSS before the
first, over the number of connections), and the chat figures. Medians of one
run on a noisy 2-core machine: read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.gateway import (  # noqa: E402
    BENCH_TIER,
    TENANT_PREFIX,
    Processes,
    free_port,
    percentile,
    provision_bench_tenant,
    remove_bench_tenants,
    setup_django,
    wait_ready,
)

RUN_DIR = REPO_ROOT / "bench" / "results" / "realtime-run"
DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "realtime.json"
CLIENT_PROCESSES = 2
BENCH_PROVIDER = "bench-rt-sim"
BENCH_MODEL = "bench-rt-small"


@dataclass
class ReaderResult:
    latencies_ms: list[float] = field(default_factory=list)
    slow_latencies_ms: list[float] = field(default_factory=list)
    messages: int = 0
    coalesced_messages: int = 0
    complete: int = 0  # readers that got every delta in order and the final event
    close_codes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--slow-share", type=float, default=0.1)
    parser.add_argument("--slow-read-ms", type=float, default=600.0)
    parser.add_argument("--delta-bytes", type=int, default=4096, help="padding per delta")
    parser.add_argument("--rate", type=float, default=2.0, help="events per second per stream")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--chat-tokens-per-second", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="200 connections for 8 s, 20 chats")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.seconds, args.chats = 200, 8.0, 20
    return args


# Server side


def register_simulator(url: str) -> None:
    from routing.models import Provider, ProviderModel

    provider, _ = Provider.objects.update_or_create(
        slug=BENCH_PROVIDER,
        defaults={
            "name": "Bench realtime simulator",
            "base_url": f"{url}/v1",
            "auth_style": "none",
            "is_simulated": True,
            "is_enabled": True,
            "total_timeout_seconds": 120,
            "max_concurrent_calls": 1000,
        },
    )
    ProviderModel.objects.update_or_create(
        model_id=BENCH_MODEL,
        defaults={
            "provider": provider,
            "upstream_model": "sim-small",
            "tier": BENCH_TIER,
            "context_window": 4_096,
            "input_price_per_million": Decimal("0.15"),
            "output_price_per_million": Decimal("0.60"),
            "is_enabled": True,
        },
    )


def unregister_simulator() -> None:
    from routing.models import Provider, ProviderModel

    ProviderModel.objects.filter(model_id=BENCH_MODEL).delete()
    Provider.objects.filter(slug=BENCH_PROVIDER).delete()


def start_stack(processes: Processes, api_key: str, tokens_per_second: float) -> str:
    sim_port, port = free_port(), free_port()
    command = [sys.executable, "manage.py", "simulated_provider", "--port", str(sim_port)]
    command += ["--latency-ms", "0", "--ttft-ms", "0", "--tokens-per-second", str(tokens_per_second)]
    processes.start("simulator", command)
    wait_ready(processes, "simulator", f"http://127.0.0.1:{sim_port}/v1/models")
    register_simulator(f"http://127.0.0.1:{sim_port}")
    command = [sys.executable, "-m", "uvicorn", "aiaas.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning", "--backlog", "4096"]
    processes.start("ours", command, {**os.environ, "USAGE_STREAM": f"usage:events:bench-rt-{os.getpid()}"})
    url = f"http://127.0.0.1:{port}"
    wait_ready(processes, "ours", f"{url}/v1/models", {"authorization": f"Bearer {api_key}"})
    return url


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# Readers (client processes)


def read_streams(
    url: str, api_key: str, stream_ids: list[str], slow: list[bool], slow_read_ms: float, out: Any, ready: Any
) -> None:
    result = asyncio.run(read_all_streams(url, api_key, stream_ids, slow, slow_read_ms, ready))
    out.put(asdict(result))


async def read_all_streams(
    url: str, api_key: str, stream_ids: list[str], slow: list[bool], slow_read_ms: float, ready: Any
) -> ReaderResult:
    from websockets.asyncio.client import connect

    result = ReaderResult()
    connections = []
    for stream_id, is_slow in zip(stream_ids, slow, strict=True):
        connections.append(
            await connect(
                f"{url.replace('http', 'ws')}/ws/v1/streams/{stream_id}",
                additional_headers={"authorization": f"Bearer {api_key}"},
                compression=None,
                proxy=None,
                max_queue=4,
                open_timeout=60,
                sock=slow_link(url) if is_slow else None,
            )
        )
    ready.set()
    await asyncio.gather(
        *(
            read_one(connection, is_slow, slow_read_ms, result)
            for connection, is_slow in zip(connections, slow, strict=True)
        )
    )
    return result


def slow_link(url: str) -> socket.socket:
    """A socket with a small receive window: a slow reader's link backs up after a few KB."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    return sock


async def read_one(connection: Any, slow: bool, slow_read_ms: float, result: ReaderResult) -> None:
    from websockets.exceptions import ConnectionClosed

    expected_seq, in_order, final = 1, True, False
    try:
        async for raw in connection:
            received = time.time()
            message = json.loads(raw)
            result.messages += 1
            first = message.get("from_seq", message["seq"])
            in_order = in_order and first == expected_seq
            expected_seq = message["seq"] + 1
            if "from_seq" in message:
                result.coalesced_messages += 1
            if message["type"] == "chunk":
                stamps = [float(part.split(":")[0]) for part in message["delta"].split(";") if part]
                sink = result.slow_latencies_ms if slow else result.latencies_ms
                sink.extend((received - stamp) * 1000 for stamp in stamps)
            final = message["type"] == "end"
            if slow:
                await asyncio.sleep(slow_read_ms / 1000)
    except ConnectionClosed:
        pass
    code = str(connection.close_code)
    result.close_codes[code] = result.close_codes.get(code, 0) + 1
    if in_order and final:
        result.complete += 1


# Publisher (this process)


async def publish_all(
    schema: str, stream_ids: list[str], rate: float, seconds: float, delta_bytes: int
) -> dict[str, float]:
    """Every stream gets `rate` chunks a second for `seconds`, then its final event;
    streams are spread evenly over each interval, as independent producers would be."""
    from realtime.streams import apublish

    interval = 1.0 / rate
    padding = "x" * delta_bytes
    started = time.monotonic()

    async def produce(index: int, stream_id: str) -> int:
        due, published = started + interval * index / len(stream_ids), 0
        while due - started < seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await apublish(schema, stream_id, {"type": "chunk", "delta": f"{time.time():.6f}:{padding};"})
            published += 1
            due += interval
        await apublish(schema, stream_id, {"type": "end"}, final=True)
        return published

    counts = await asyncio.gather(*(produce(index, stream_id) for index, stream_id in enumerate(stream_ids)))
    elapsed = time.monotonic() - started
    return {"events": sum(counts), "seconds": elapsed, "events_per_second": sum(counts) / elapsed}


def run_streams(
    url: str, api_key: str, schema: str, server_pid: int, args: argparse.Namespace
) -> dict[str, Any]:
    from realtime.streams import new_stream_id, publish

    stream_ids = [new_stream_id("bench") for _ in range(args.connections)]
    for stream_id in stream_ids:
        publish(schema, stream_id, {"type": "start"})
    slow_every = round(1 / args.slow_share) if args.slow_share > 0 else 0
    slow = [slow_every > 0 and index % slow_every == 0 for index in range(args.connections)]
    rss_before = rss_bytes(server_pid)
    context = multiprocessing.get_context("spawn")
    out, workers, readies = context.Queue(), [], []
    for index in range(CLIENT_PROCESSES):
        ready = context.Event()
        share = slice(index, None, CLIENT_PROCESSES)
        worker = context.Process(
            target=read_streams,
            args=(url, api_key, stream_ids[share], slow[share], args.slow_read_ms, out, ready),
        )
        worker.start()
        workers.append(worker)
        readies.append(ready)
    for ready in readies:
        if not ready.wait(120):
            raise RuntimeError("the readers did not connect within 120 s")
    time.sleep(1.0)
    rss_connected = rss_bytes(server_pid)
    started = time.monotonic()
    publishing = asyncio.run(publish_all(schema, stream_ids, args.rate, args.seconds, args.delta_bytes))
    rss_loaded = rss_bytes(server_pid)
    results = [out.get(timeout=600) for _ in workers]
    drained = time.monotonic() - started
    for worker in workers:
        worker.join(30)
    return summarize_streams(results, publishing, drained, rss_before, rss_connected, rss_loaded, slow, args)


def summarize_streams(
    results: list[dict[str, Any]],
    publishing: dict[str, float],
    drained: float,
    rss_before: int,
    rss_connected: int,
    rss_loaded: int,
    slow: list[bool],
    args: argparse.Namespace,
) -> dict[str, Any]:
    normal = sorted(value for result in results for value in result["latencies_ms"])
    slow_latencies = sorted(value for result in results for value in result["slow_latencies_ms"])
    close_codes: dict[str, int] = {}
    for result in results:
        for code, count in result["close_codes"].items():
            close_codes[code] = close_codes.get(code, 0) + count
    messages = sum(result["messages"] for result in results)
    return {
        "connections": args.connections,
        "slow_readers": sum(slow),
        "events_published": publishing["events"],
        "events_per_second": round(publishing["events_per_second"]),
        "messages_received": messages,
        "messages_per_second": round(messages / drained),
        "coalesced_messages": sum(result["coalesced_messages"] for result in results),
        "complete_readers": sum(result["complete"] for result in results),
        "close_codes": close_codes,
        "latency_ms_normal": latency_summary(normal),
        "latency_ms_slow": latency_summary(slow_latencies),
        "server_rss_mb": {
            "before": round(rss_before / 2**20, 1),
            "connected": round(rss_connected / 2**20, 1),
            "under_load": round(rss_loaded / 2**20, 1),
        },
        "memory_per_connection_kb": round(
            (max(rss_connected, rss_loaded) - rss_before) / args.connections / 1024, 1
        ),
    }


def latency_summary(ordered: list[float]) -> dict[str, float]:
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 50), 2),
        "p99": round(percentile(ordered, 99), 2),
        "max": round(ordered[-1], 2),
    }


# Chat completions over WebSockets


async def one_chat(url: str, api_key: str, index: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    started = time.monotonic()
    first: float | None = None
    body = {
        "model": BENCH_MODEL,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": f"Bench chat {index}"}],
    }
    async with connect(
        f"{url.replace('http', 'ws')}/ws/v1/chat/completions",
        additional_headers={"authorization": f"Bearer {api_key}"},
        compression=None,
        proxy=None,
        open_timeout=60,
    ) as connection:
        await connection.send(json.dumps(body))
        async for raw in connection:
            message = json.loads(raw)
            if first is None:
                first = time.monotonic()
            if message["type"] in ("done", "error"):
                return {
                    "type": message["type"],
                    "first_ms": (first - started) * 1000,
                    "total_ms": (time.monotonic() - started) * 1000,
                }
    return {"type": "closed", "first_ms": 0.0, "total_ms": 0.0}


def run_chats(url: str, api_key: str, args: argparse.Namespace) -> dict[str, Any]:
    async def run() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(one_chat(url, api_key, index) for index in range(args.chats))))

    started = time.monotonic()
    results = asyncio.run(run())
    elapsed = time.monotonic() - started
    done = [result for result in results if result["type"] == "done"]
    return {
        "concurrent": args.chats,
        "tokens_per_second_per_stream": args.chat_tokens_per_second,
        "done": len(done),
        "errors": len(results) - len(done),
        "first_chunk_ms_p50": round(median(result["first_ms"] for result in done), 1) if done else None,
        "first_chunk_ms_p99": round(percentile(sorted(r["first_ms"] for r in done), 99), 1) if done else None,
        "completion_ms_p50": round(median(result["total_ms"] for result in done), 1) if done else None,
        "seconds": round(elapsed, 2),
    }


# Report


def print_report(report: dict[str, Any]) -> None:
    streams, chats = report["streams"], report["chat"]
    rows = [
        ("connections (slow readers)", f"{streams['connections']} ({streams['slow_readers']})"),
        ("events published / s", streams["events_per_second"]),
        ("messages received / s", streams["messages_per_second"]),
        ("coalesced messages", streams["coalesced_messages"]),
        ("readers complete, in order, final", f"{streams['complete_readers']} / {streams['connections']}"),
        ("close codes", streams["close_codes"]),
        ("delta latency normal p50 / p99 ms", latency_pair(streams["latency_ms_normal"])),
        ("delta latency slow p50 / p99 ms", latency_pair(streams["latency_ms_slow"])),
        (
            "server RSS before / connected / load MB",
            "{before} / {connected} / {under_load}".format(**streams["server_rss_mb"]),
        ),
        ("server memory per connection KB", streams["memory_per_connection_kb"]),
        ("chat: concurrent, done, errors", f"{chats['concurrent']}, {chats['done']}, {chats['errors']}"),
        ("chat: first chunk p50 / p99 ms", f"{chats['first_chunk_ms_p50']} / {chats['first_chunk_ms_p99']}"),
        ("chat: whole completion p50 ms", chats["completion_ms_p50"]),
    ]
    width = max(len(name) for name, _ in rows)
    print("-" * (width + 30))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("-" * (width + 30))


def latency_pair(summary: dict[str, float]) -> str:
    return f"{summary.get('p50', '-')} / {summary.get('p99', '-')}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    setup_django()
    from django.core.management import call_command

    call_command("bootstrap", verbosity=0)  # a fresh clone's database: migrated, the tenant template
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    processes = Processes(RUN_DIR)
    slug = f"{TENANT_PREFIX}rt{secrets.token_hex(4)}"
    try:
        api_key = provision_bench_tenant(slug)
        from tenants.models import Tenant

        schema = Tenant.objects.get(slug=slug).schema_name
        url = start_stack(processes, api_key, args.chat_tokens_per_second)
        server_pid = processes.process("ours").pid
        streams = run_streams(url, api_key, schema, server_pid, args)
        chat = run_chats(url, api_key, args)
    finally:
        processes.stop_all()
        unregister_simulator()
        remove_bench_tenants()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {key: value for key, value in vars(args).items() if key != "json"},
        "streams": streams,
        "chat": chat,
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    report = run(args)
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
