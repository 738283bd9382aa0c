"""The /v1 gateway against the LiteLLM proxy: overhead with one client, and throughput.

    python bench/gateway.py [--quick] [--json PATH]
    python bench/gateway.py --observability-baseline REV [--requests N]

Needs DATABASE_URL, REDIS_URL and SECRET_KEY (run it under
`python -m aiaas.launcher exec --`), `wrk` (`apt-get install wrk`; without it
an in-process asyncio+httpx generator is used) and the LiteLLM proxy in its own
virtualenv, bench/.venv-litellm, which the script creates when it is missing.

Setup, all in one invocation: two simulated providers (gateway/simulated/provider.py,
0 ms and 60 ms of latency, then the whole answer at once), our platform under
uvicorn (2 workers) and the LiteLLM proxy (2 workers, no database, no
callbacks, a master key), both pointed at the same two simulators. A bench
tenant with an admin key and the registry rows bench-0ms-small / bench-60ms-small
are created for the run and deleted after it, with every subprocess, also on
Ctrl-C or an error.

Three targets per upstream: `direct` (the simulator itself), `ours` and `litellm`.

- One client: sequential requests on one keep-alive connection per target, the
  targets interleaved request by request. Overhead at a percentile is the
  target's latency there minus the direct latency there. Ours also reports its
  own x-aiaas-overhead-ms header.
- Throughput: wrk (one thread) at each concurrency for a fixed time, the targets
  in rotating order, repeated --rounds times; medians of the rounds, errors
  summed. Saturation throughput is the best median over the concurrencies.

Goals (shared/design/quality.md, ADR 0005): saturation throughput at least 2x
LiteLLM's on the 0 ms upstream, overhead p50 / p95 at most 3 / 5 ms with one client.

--observability-baseline REV measures what metrics and JSON logs cost instead
(issue 18's goal: at most 0.2 ms more at the median with one client): on the 0 ms
upstream, one client, interleaved, `before` (REV's code, `git archive`d under
the run folder), `ours` (this tree, multiprocess metrics and JSON logs on) and
`ours+access` (the same with the access log line per request); no LiteLLM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import json
import logging
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import IO, Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
RUN_DIR = BENCH_DIR / "results" / "gateway-run"  # generated config and server logs
DEFAULT_JSON_PATH = BENCH_DIR / "results" / "gateway.json"
OBSERVABILITY_JSON_PATH = BENCH_DIR / "results" / "gateway-observability.json"
OBSERVABILITY_GOAL_MS = 0.2
LUA_SCRIPT = BENCH_DIR / "gateway_load.lua"
LITELLM_VENV = BENCH_DIR / ".venv-litellm"
LITELLM_REQUIREMENTS = ("litellm[proxy]==1.108.7", "httptools")  # httptools: the parser ours uses too
UPSTREAMS = {"0ms": 0, "60ms": 60}  # name -> simulated latency in ms
TARGETS = ("direct", "ours", "litellm")
WORKERS = 2
READY_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0
MAX_TOKENS = 16
PROMPT = "Say hello to the benchmark in one short sentence."
GOALS = {"saturation_ratio": 2.0, "overhead_p50_ms": 3.0, "overhead_p95_ms": 5.0}
PERCENTILES = (50, 95, 99)
PR_SET_PDEATHSIG = 1
TENANT_PREFIX = "bench-gw-"
# Last in `auto` routing, so other traffic on this stack never picks a bench model, and
# the bench's own plans have no fallback (as LiteLLM is run without retries or fallbacks).
BENCH_TIER = 99


@dataclass(frozen=True)
class Endpoint:
    """One target serving one upstream's model."""

    target: str
    upstream: str
    base_url: str
    model: str
    authorization: str = ""

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"

    @property
    def body(self) -> str:
        message = {"role": "user", "content": PROMPT}
        return json.dumps({"model": self.model, "messages": [message], "max_tokens": MAX_TOKENS})

    @property
    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.authorization:
            headers["authorization"] = self.authorization
        return headers


@dataclass
class LatencySeries:
    latencies_ms: list[float] = field(default_factory=list)
    header_overhead_ms: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass
class LoadResult:
    target: str
    upstream: str
    concurrency: int
    round: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# Arguments


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 round, 100 sequential requests")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH, help="where to write the results")
    parser.add_argument("--requests", type=int, help="sequential requests per target (300; quick 100)")
    parser.add_argument("--warmup", type=int, help="unmeasured sequential requests first (30; quick 20)")
    parser.add_argument("--seconds", type=float, help="seconds per throughput run (10; quick 3)")
    parser.add_argument("--rounds", type=int, help="throughput rounds, medians reported (3; quick 1)")
    parser.add_argument("--concurrency", default="1,8,32,64", help="throughput concurrencies (1,8,32,64)")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument(
        "--observability-baseline",
        metavar="REV",
        help="instead: one client, metrics and JSON logs on vs REV's code (before them)",
    )
    args = parser.parse_args(argv)
    if args.observability_baseline and args.json == DEFAULT_JSON_PATH:
        args.json = OBSERVABILITY_JSON_PATH
    for name, full, quick in (("requests", 300, 100), ("warmup", 30, 20), ("seconds", 10.0, 3.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.concurrency = [int(value) for value in args.concurrency.split(",")]
    args.load_generator = choose_load_generator(args.load_generator)
    return args


def choose_load_generator(wanted: str) -> str:
    if wanted != "httpx" and shutil.which("wrk"):
        return "wrk"
    if wanted == "wrk":
        sys.exit(
            "wrk is not installed: `apt-get install wrk` (Debian package wrk), or --load-generator httpx"
        )
    if wanted == "auto":
        print("wrk not found (install: apt-get install wrk); using the in-process asyncio+httpx generator")
    return "httpx"


# Subprocesses


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    """The subprocesses this run started, each in its own session (process group),
    so stopping one stops its workers too and a Ctrl-C reaches only this script.
    Each also gets SIGTERM if this script dies without stopping it (killed)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None, cwd: Path = REPO_ROOT
    ) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
        self.started.append((name, process, log))

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return next(process for started, process, _ in self.started if started == name)

    def log_tail(self, name: str, lines: int = 20) -> str:
        text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop_all(self) -> None:
        for _, process, _ in self.started:
            signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for _, process, log in self.started:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(process, signal.SIGKILL)
                process.wait()
            log.close()
        self.started.clear()


def die_with_parent(parent_pid: int) -> None:
    """Run in the child before exec: SIGTERM when the parent dies, even by SIGKILL (Linux
    prctl PR_SET_PDEATHSIG), as `launcher exec` does to its command 0.25 s after a Ctrl-C."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)  # the group's id is the pid: start_new_session


def wait_ready(processes: Processes, name: str, url: str, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if processes.process(name).poll() is not None:
            raise RuntimeError(f"{name} exited during startup:\n{processes.log_tail(name)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{name} not ready after {READY_TIMEOUT_SECONDS:.0f} s:\n{processes.log_tail(name)}")


def start_simulators(processes: Processes) -> dict[str, str]:
    """Upstream name -> base URL (up to /v1 excluded)."""
    urls = {}
    for upstream, latency_ms in UPSTREAMS.items():
        port = free_port()
        command = [sys.executable, "manage.py", "simulated_provider", "--port", str(port)]
        command += ["--latency-ms", str(latency_ms), "--ttft-ms", "0", "--tokens-per-second", "0"]
        processes.start(f"simulator-{upstream}", command)
        urls[upstream] = f"http://127.0.0.1:{port}"
    for upstream, url in urls.items():
        wait_ready(processes, f"simulator-{upstream}", f"{url}/v1/models")
    return urls


BENCH_USAGE_STREAM = f"usage:events:bench-{os.getpid()}"


def drop_bench_usage_stream() -> None:
    import redis
    from django.conf import settings

    with redis.Redis.from_url(settings.REDIS_URL) as client:
        client.delete(BENCH_USAGE_STREAM, f"{BENCH_USAGE_STREAM}:dead")


def start_ours(
    processes: Processes,
    api_key: str,
    name: str = "ours",
    environ: dict[str, str] | None = None,
    code: Path = REPO_ROOT,
) -> str:
    """Our platform under uvicorn, serving `code` (this tree, or a baseline's files)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "aiaas.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(WORKERS), "--no-access-log", "--log-level", "warning"]
    # The run's usage events go to a stream of its own, dropped at the end: its
    # tenant is deleted before a ledger flush could store them.
    env = {**os.environ, "USAGE_STREAM": BENCH_USAGE_STREAM, **(environ or {})}
    processes.start(name, command, env, cwd=code)
    url = f"http://127.0.0.1:{port}"
    wait_ready(processes, name, f"{url}/v1/models", {"authorization": f"Bearer {api_key}"})
    return url


# LiteLLM


def ensure_litellm_venv() -> str:
    """The LiteLLM version in bench/.venv-litellm, installing it first when needed."""
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {LITELLM_VENV.relative_to(REPO_ROOT)}")
        base = shutil.which("python3.11") or sys.executable
        subprocess.run([base, "-m", "venv", str(LITELLM_VENV)], check=True)
    probe = "import importlib.metadata as m, httptools; print(m.version('litellm'))"
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    wanted = LITELLM_REQUIREMENTS[0].split("==")[1]
    if found.returncode != 0 or found.stdout.strip() != wanted:
        print(f"installing {' '.join(LITELLM_REQUIREMENTS)} into {LITELLM_VENV.relative_to(REPO_ROOT)}")
        subprocess.run([str(python), "-m", "pip", "install", "-q", *LITELLM_REQUIREMENTS], check=True)
    return wanted


def litellm_config(sim_urls: dict[str, str], master_key: str) -> str:
    lines = ["model_list:"]
    for upstream, url in sim_urls.items():
        lines += [
            f"  - model_name: {registry_model_id(upstream)}",
            "    litellm_params:",
            "      model: openai/sim-small",
            f"      api_base: {url}/v1",
            "      api_key: sim",
        ]
    lines += ["litellm_settings:", "  callbacks: []", "  num_retries: 0", "  request_timeout: 30"]
    lines += ["  set_verbose: false", "general_settings:", f"  master_key: {master_key}"]
    return "\n".join(lines) + "\n"


def litellm_environment() -> dict[str, str]:
    """Our environment without our services (LiteLLM would use DATABASE_URL), quiet and offline."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return {**env, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def start_litellm(processes: Processes, sim_urls: dict[str, str], master_key: str) -> str:
    config = RUN_DIR / "litellm.yaml"
    config.write_text(litellm_config(sim_urls, master_key))
    port = free_port()
    command = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--num_workers", str(WORKERS)]
    processes.start("litellm", command, litellm_environment())
    url = f"http://127.0.0.1:{port}"
    wait_ready(processes, "litellm", f"{url}/health/liveliness")
    return url


# Django: the database, the bench tenant and the registry rows


def setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # settings log every request at INFO


def registry_model_id(upstream: str) -> str:
    return f"bench-{upstream}-small"


def register_upstreams(sim_urls: dict[str, str]) -> None:
    """One provider and one model per simulator, under ids of their own (the shared
    register_simulated_provider would re-point the registry's sim-small)."""
    from routing.models import Provider, ProviderModel

    for upstream, url in sim_urls.items():
        provider, _ = Provider.objects.update_or_create(
            slug=f"bench-sim-{upstream}",
            defaults={
                "name": f"Bench simulator {upstream}",
                "base_url": f"{url}/v1",
                "auth_style": "none",
                "is_simulated": True,
                "is_enabled": True,
            },
        )
        ProviderModel.objects.update_or_create(
            model_id=registry_model_id(upstream),
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


def unregister_upstreams() -> None:
    from routing.models import Provider, ProviderModel

    ProviderModel.objects.filter(model_id__in=[registry_model_id(u) for u in UPSTREAMS]).delete()
    Provider.objects.filter(slug__in=[f"bench-sim-{u}" for u in UPSTREAMS]).delete()


BENCH_PLAN = "bench-unbounded"
UNBOUNDED = 10**9


def provision_bench_tenant(slug: str) -> str:
    """The bench tenant's admin API key, on a plan whose limits are checked on
    every request (limits, budget reservation, ledger all on) but never bind."""
    from billing.models import Plan
    from tenants.services import provision_tenant

    limits = (
        "key_requests_per_minute",
        "key_tokens_per_minute",
        "tenant_requests_per_minute",
        "tenant_tokens_per_minute",
    )
    Plan.objects.update_or_create(
        slug=BENCH_PLAN,
        defaults={
            "name": "Bench (limits checked, never binding)",
            **dict.fromkeys(limits, UNBOUNDED),
            "monthly_token_budget": UNBOUNDED * 1000,
            "monthly_spend_budget_usd": UNBOUNDED,
        },
    )
    provisioned = provision_tenant(
        slug=slug, name=f"Bench {slug}", owner_email="owner@bench.example", plan_slug=BENCH_PLAN
    )
    return provisioned.issued_key.secret


def remove_bench_tenants() -> None:
    """This run's tenant, and any a killed run left behind."""
    from bench.provisioning import remove_tenants
    from tenants.models import Tenant

    slugs = list(Tenant.objects.filter(slug__startswith=TENANT_PREFIX).values_list("slug", flat=True))
    for failure in remove_tenants(slugs):
        print(f"cleanup failed: {failure}", file=sys.stderr)


# Measurements


def endpoints(
    urls: dict[str, str], sim_urls: dict[str, str], api_key: str, master_key: str
) -> list[Endpoint]:
    found = []
    for upstream, sim_url in sim_urls.items():
        found.append(Endpoint("direct", upstream, sim_url, "sim-small"))
        found.append(
            Endpoint("ours", upstream, urls["ours"], registry_model_id(upstream), f"Bearer {api_key}")
        )
        model = registry_model_id(upstream)
        found.append(Endpoint("litellm", upstream, urls["litellm"], model, f"Bearer {master_key}"))
    return found


def check_answers(all_endpoints: list[Endpoint]) -> None:
    """Fail before measuring anything when a target does not answer correctly."""
    for endpoint in all_endpoints:
        response = httpx.post(endpoint.url, content=endpoint.body, headers=endpoint.headers, timeout=30)
        if response.status_code != 200 or not response.json().get("choices"):
            raise RuntimeError(
                f"{endpoint.target}/{endpoint.upstream}: {response.status_code} {response.text}"
            )


def rotated(items: list[Endpoint], by: int) -> list[Endpoint]:
    shift = by % len(items)
    return items[shift:] + items[:shift]


def timed_post(client: httpx.Client, endpoint: Endpoint, series: LatencySeries | None) -> None:
    started = time.perf_counter()
    response = client.post(endpoint.url, content=endpoint.body, headers=endpoint.headers)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if series is None:
        return
    if response.status_code != 200:
        series.errors += 1
        return
    series.latencies_ms.append(elapsed_ms)
    if (header := response.headers.get("x-aiaas-overhead-ms")) is not None:
        series.header_overhead_ms.append(float(header))


def measure_latency(group: list[Endpoint], warmup: int, count: int) -> dict[str, LatencySeries]:
    """One client: sequential requests, the targets interleaved request by request."""
    series = {endpoint.target: LatencySeries() for endpoint in group}
    with contextlib.ExitStack() as stack:
        clients = {e.target: stack.enter_context(httpx.Client(timeout=30)) for e in group}
        for index in range(warmup + count):
            for endpoint in rotated(group, index):
                measured = series[endpoint.target] if index >= warmup else None
                timed_post(clients[endpoint.target], endpoint, measured)
    return series


def run_wrk(endpoint: Endpoint, concurrency: int, seconds: float) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "30s"]
    command += ["-s", str(LUA_SCRIPT), endpoint.url]
    env = {**os.environ, "BENCH_BODY": endpoint.body, "BENCH_AUTHORIZATION": endpoint.authorization}
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next((line for line in output.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors"))
    return {
        "requests": int(data["requests"]) - int(data["status_errors"]),
        "seconds": data["duration_us"] / 1e6,
        "errors": int(errors + data["timeouts"]),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
    }


async def httpx_load(endpoint: Endpoint, concurrency: int, seconds: float) -> dict[str, Any]:
    """The fallback generator: `concurrency` coroutines posting back to back on one pool."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        started = time.perf_counter()
        stop_at = started + seconds

        async def worker() -> None:
            nonlocal errors
            while (now := time.perf_counter()) < stop_at:
                try:
                    response = await client.post(
                        endpoint.url, content=endpoint.body, headers=endpoint.headers
                    )
                except httpx.HTTPError:
                    errors += 1
                    continue
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - now) * 1000)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": errors,
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
    }


def run_load(generator: str, endpoint: Endpoint, concurrency: int, seconds: float, round_: int) -> LoadResult:
    if generator == "wrk":
        data = run_wrk(endpoint, concurrency, seconds)
    else:
        data = asyncio.run(httpx_load(endpoint, concurrency, seconds))
    return LoadResult(endpoint.target, endpoint.upstream, concurrency, round_, **data)


def measure_throughput(all_endpoints: list[Endpoint], args: argparse.Namespace) -> list[LoadResult]:
    warmup_seconds = min(args.seconds, 2.0)
    for endpoint in all_endpoints:  # warms every worker's pools and caches
        run_load(args.load_generator, endpoint, 8, warmup_seconds, -1)
    results = []
    step = 0
    for round_ in range(args.rounds):
        for upstream in UPSTREAMS:
            group = [e for e in all_endpoints if e.upstream == upstream]
            for concurrency in args.concurrency:
                for endpoint in rotated(group, step):
                    result = run_load(args.load_generator, endpoint, concurrency, args.seconds, round_)
                    results.append(result)
                    print(
                        f"  round {round_ + 1} {upstream:>4} c={concurrency:<3} {endpoint.target:<8}"
                        f" {result.rps:8.0f} req/s  {result.errors} errors"
                    )
                step += 1
    return results


# Summaries


def percentile(ordered: list[float], percent: float) -> float:
    """Nearest rank on sorted values (NaN for none)."""
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {f"p{p}": percentile(ordered, p) for p in PERCENTILES}


def summarize_latency(series: dict[str, LatencySeries]) -> dict[str, Any]:
    direct = percentiles(series["direct"].latencies_ms)
    summary: dict[str, Any] = {}
    for target, measured in series.items():
        latency = percentiles(measured.latencies_ms)
        summary[target] = {"n": len(measured.latencies_ms), "errors": measured.errors, "latency_ms": latency}
        if target != "direct":
            summary[target]["overhead_ms"] = {p: latency[p] - direct[p] for p in latency}
        if measured.header_overhead_ms:
            summary[target]["header_overhead_ms"] = percentiles(measured.header_overhead_ms)
    return summary


def summarize_throughput(results: list[LoadResult], concurrencies: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for upstream in UPSTREAMS:
        cells: dict[str, Any] = {}
        for concurrency in concurrencies:
            cells[str(concurrency)] = {}
            for target in TARGETS:
                runs = [
                    r
                    for r in results
                    if (r.upstream, r.concurrency, r.target) == (upstream, concurrency, target)
                ]
                cells[str(concurrency)][target] = {
                    "rps_median": median(r.rps for r in runs),
                    "errors": sum(r.errors for r in runs),
                    "p50_ms_median": median(r.p50_ms for r in runs),
                    "p99_ms_median": median(r.p99_ms for r in runs),
                }
        saturation = {t: max(cells[str(c)][t]["rps_median"] for c in concurrencies) for t in TARGETS}
        summary[upstream] = {
            "by_concurrency": cells,
            "saturation_rps": saturation,
            "saturation_ratio_ours_litellm": ratio(saturation["ours"], saturation["litellm"]),
        }
    return summary


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("inf")


def check_goals(latency: dict[str, Any], throughput: dict[str, Any]) -> dict[str, Any]:
    goals: dict[str, Any] = {
        "saturation_ratio_0ms": {
            "goal": f">= {GOALS['saturation_ratio']}",
            "measured": throughput["0ms"]["saturation_ratio_ours_litellm"],
        }
    }
    goals["saturation_ratio_0ms"]["met"] = (
        goals["saturation_ratio_0ms"]["measured"] >= GOALS["saturation_ratio"]
    )
    for upstream in UPSTREAMS:
        overhead = latency[upstream]["ours"]["overhead_ms"]
        for p in ("p50", "p95"):
            limit = GOALS[f"overhead_{p}_ms"]
            goals[f"overhead_{p}_{upstream}"] = {
                "goal": f"<= {limit} ms",
                "measured": overhead[p],
                "met": overhead[p] <= limit,
            }
    return goals


# Report


def print_latency(latency: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\nOne client, sequential, {args.requests} requests per target after {args.warmup} warm-up (ms)")
    header = f"{'upstream':<8} {'target':<8} {'p50':>7} {'p95':>7} {'p99':>7}   {'overhead p50/p95/p99':>22}"
    header += f"   {'x-aiaas-overhead-ms p50/p95/p99':>31} {'errors':>6}"
    print(header)
    print("-" * len(header))
    for upstream, targets in latency.items():
        for target, row in targets.items():
            lat = row["latency_ms"]
            line = f"{upstream:<8} {target:<8} {lat['p50']:7.2f} {lat['p95']:7.2f} {lat['p99']:7.2f}   "
            line += f"{triple(row.get('overhead_ms')):>22}   {triple(row.get('header_overhead_ms')):>31}"
            print(f"{line} {row['errors']:>6}")


def triple(values: dict[str, float] | None) -> str:
    return " / ".join(f"{values[p]:.2f}" for p in ("p50", "p95", "p99")) if values else "-"


def print_throughput(throughput: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\nThroughput, requests/s (median of {args.rounds} x {args.seconds:g} s runs; errors summed)")
    header = f"{'upstream':<8} {'conc':>4} {'direct':>9} {'ours':>9} {'litellm':>9} {'ours/litellm':>13}"
    header += f" {'errors ours/litellm':>20}"
    print(header)
    print("-" * len(header))
    for upstream, data in throughput.items():
        for concurrency, cell in data["by_concurrency"].items():
            rps = {t: cell[t]["rps_median"] for t in TARGETS}
            line = f"{upstream:<8} {concurrency:>4} " + " ".join(f"{rps[t]:9.0f}" for t in TARGETS)
            errors = f"{cell['ours']['errors']} / {cell['litellm']['errors']}"
            print(f"{line} {ratio(rps['ours'], rps['litellm']):12.2f}x {errors:>20}")
        sat = data["saturation_rps"]
        print(
            f"{upstream:<8} {'max':>4} {sat['direct']:9.0f} {sat['ours']:9.0f} {sat['litellm']:9.0f}"
            f" {data['saturation_ratio_ours_litellm']:12.2f}x"
        )


def print_goals(goals: dict[str, Any]) -> None:
    print("\nGoals")
    for name, goal in goals.items():
        verdict = "met" if goal["met"] else "MISSED"
        print(f"  {name:<24} {goal['measured']:8.2f} (goal {goal['goal']}): {verdict}")


# The run


def environment(litellm_version: str, generator: str) -> dict[str, Any]:
    wrk = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        if generator == "wrk"
        else None
    )
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "litellm": litellm_version,
        "load_generator": generator,
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if wrk else None,
        "workers_per_server": WORKERS,
    }


@contextlib.contextmanager
def bench_stack(slug: str, master_key: str) -> Iterator[tuple[list[Endpoint], str]]:
    """Everything a run needs, torn down in reverse order whatever happens."""
    from django.core.management import call_command

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    processes = Processes(RUN_DIR)
    try:
        call_command("bootstrap", verbosity=0)
        remove_bench_tenants()  # left by a run that was killed
        litellm_version = ensure_litellm_venv()
        api_key = provision_bench_tenant(slug)
        sim_urls = start_simulators(processes)
        register_upstreams(sim_urls)
        urls = {
            "ours": start_ours(processes, api_key),
            "litellm": start_litellm(processes, sim_urls, master_key),
        }
        yield endpoints(urls, sim_urls, api_key, master_key), litellm_version
    finally:
        processes.stop_all()
        unregister_upstreams()
        remove_bench_tenants()
        drop_bench_usage_stream()


def measure(all_endpoints: list[Endpoint], args: argparse.Namespace) -> dict[str, Any]:
    check_answers(all_endpoints)
    latency = {}
    for upstream in UPSTREAMS:
        print(f"one-client latency, {upstream} upstream")
        group = [e for e in all_endpoints if e.upstream == upstream]
        latency[upstream] = summarize_latency(measure_latency(group, args.warmup, args.requests))
    print(f"throughput with {args.load_generator}")
    results = measure_throughput(all_endpoints, args)
    throughput = summarize_throughput(results, args.concurrency)
    return {
        "latency": latency,
        "throughput": throughput,
        "goals": check_goals(latency, throughput),
        "throughput_runs": [asdict(r) | {"rps": r.rps} for r in results],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    slug = TENANT_PREFIX + "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
    master_key = f"sk-bench-{secrets.token_hex(12)}"
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    with bench_stack(slug, master_key) as (all_endpoints, litellm_version):
        measured = measure(all_endpoints, args)
    return {
        "benchmark": "gateway",
        "started_at": started_at.isoformat(),
        "command": " ".join(["python", "bench/gateway.py", *sys.argv[1:]]),
        "environment": environment(litellm_version, args.load_generator),
        # Other work on the machine skews the runs: a 1-minute load average well above 0 before the run.
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        **measured,
    }


# --observability-baseline: metrics and JSON logs on vs before them

OBSERVED_TARGETS = {  # target -> its settings; `before` runs the baseline's code
    "ours": {"LOG_FORMAT": "json", "ACCESS_LOG": "0"},
    "ours+access": {"LOG_FORMAT": "json", "ACCESS_LOG": "1"},
}


def export_tree(rev: str) -> Path:
    """REV's files (`git archive`) under the run folder: the baseline server's code."""
    tree = RUN_DIR / "baseline"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO_ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def observed_environ(target: str, metrics_token: str) -> dict[str, str]:
    """A target's settings: its own multiprocess metrics folder, emptied, and the scrape token."""
    folder = RUN_DIR / f"prometheus-{target}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return {
        **OBSERVED_TARGETS[target],
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "METRICS_TOKEN": metrics_token,
    }


@contextlib.contextmanager
def observability_stack(slug: str, rev: str, metrics_token: str) -> Iterator[list[Endpoint]]:
    """The 0 ms simulator, the baseline's server and ours (twice), torn down whatever happens."""
    from django.core.management import call_command

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    processes = Processes(RUN_DIR)
    try:
        call_command("bootstrap", verbosity=0)
        remove_bench_tenants()
        api_key = provision_bench_tenant(slug)
        sim_urls = start_simulators(processes)
        register_upstreams(sim_urls)
        model, authorization = registry_model_id("0ms"), f"Bearer {api_key}"
        found = [
            Endpoint("direct", "0ms", sim_urls["0ms"], "sim-small"),
            Endpoint("before", "0ms", start_ours(processes, api_key, "before", code=export_tree(rev)), model),
        ]
        for target in OBSERVED_TARGETS:
            url = start_ours(processes, api_key, target, observed_environ(target, metrics_token))
            found.append(Endpoint(target, "0ms", url, model))
        yield [
            replace(endpoint, authorization=authorization) if endpoint.model == model else endpoint
            for endpoint in found
        ]
    finally:
        processes.stop_all()
        unregister_upstreams()
        remove_bench_tenants()
        drop_bench_usage_stream()


def counted_chat_requests(endpoint: Endpoint, metrics_token: str) -> float:
    """What `endpoint`'s metrics say it served (proof the metrics were on)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(
        f"{endpoint.base_url}/metrics", headers={"authorization": f"Bearer {metrics_token}"}, timeout=10
    ).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "aiaas_http_requests_total" and sample.labels.get("route") == "/v1/chat/completions"
    )


def summarize_observability(series: dict[str, LatencySeries], rev: str) -> dict[str, Any]:
    medians = {target: median(measured.latencies_ms) for target, measured in series.items()}
    before = medians["before"]
    added = {target: medians[target] - before for target in OBSERVED_TARGETS}
    return {
        "baseline": rev,
        "median_ms": medians,
        "overhead_median_ms": {t: m - medians["direct"] for t, m in medians.items() if t != "direct"},
        "added_median_ms": added,
        "ratio_to_before": {target: ratio(medians[target], before) for target in OBSERVED_TARGETS},
        "errors": {target: measured.errors for target, measured in series.items()},
        "goal": {
            "added_median_ms": f"<= {OBSERVABILITY_GOAL_MS}",
            "met": added["ours"] <= OBSERVABILITY_GOAL_MS,
        },
    }


def run_observability(args: argparse.Namespace) -> dict[str, Any]:
    slug = TENANT_PREFIX + "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
    metrics_token = secrets.token_hex(16)
    load_before = os.getloadavg()
    with observability_stack(slug, args.observability_baseline, metrics_token) as group:
        check_answers(group)
        series = measure_latency(group, args.warmup, args.requests)
        observed = [endpoint for endpoint in group if endpoint.target in OBSERVED_TARGETS]
        counted = {endpoint.target: counted_chat_requests(endpoint, metrics_token) for endpoint in observed}
    return {
        "benchmark": "gateway-observability",
        "started_at": datetime.now(UTC).isoformat(),
        "command": " ".join(["python", "bench/gateway.py", *sys.argv[1:]]),
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "settings": {"requests": args.requests, "warmup": args.warmup, "workers_per_server": WORKERS},
        "chat_requests_in_metrics": counted,
        **summarize_observability(series, args.observability_baseline),
    }


def print_observability(result: dict[str, Any]) -> None:
    print(f"\nOne client, 0 ms upstream, {result['settings']['requests']} requests per target (ms)")
    print(f"{'target':<12} {'median':>8} {'overhead':>9} {'added':>7} {'ratio':>6} {'errors':>6}")
    for target, value in result["median_ms"].items():
        cells = [
            result["overhead_median_ms"].get(target),
            result["added_median_ms"].get(target),
            result["ratio_to_before"].get(target),
        ]
        shown = " ".join(
            f"{cell:>{width}.3f}" if cell is not None else f"{'-':>{width}}"
            for cell, width in zip(cells, (9, 7, 6), strict=True)
        )
        print(f"{target:<12} {value:8.3f} {shown} {result['errors'][target]:>6}")
    goal = result["goal"]
    verdict = "met" if goal["met"] else "MISSED"
    print(f"\nadded median (ours - before), goal {goal['added_median_ms']} ms: {verdict}")
    print(f"chat requests in each target's metrics: {result['chat_requests_in_metrics']}")


def raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)  # clean up on SIGTERM as on Ctrl-C
    setup_django()
    if args.observability_baseline:
        result = run_observability(args)
        print_observability(result)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
        return 0
    result = run(args)
    print_latency(result["latency"], args)
    print_throughput(result["throughput"], args)
    print_goals(result["goals"])
    load = result["load_average_1m"]
    print(f"\n1-minute load average before / after the run: {load['before']:.2f} / {load['after']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
