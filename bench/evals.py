"""The eval runner's throughput: cases per second against the simulated provider.

    python bench/evals.py [--quick] [--json PATH]

Needs DATABASE_URL, REDIS_URL and SECRET_KEY (run it under
`python -m aiaas.launcher exec --`, or `make bench-evals`). Two simulated
providers are started (`manage.py simulated_provider`, 0 ms and 500 ms of
latency, the whole answer at once) and registered as bench models; one bench
tenant (limits checked on every call, never binding) is provisioned. All are
removed at the end, also on an error.

Each scenario is one experiment of a new dataset version of N cases (a chat
of one message, one `contains` assertion each), run by `evals.runner.run` in
this process, as a worker runs it (no broker between): each case through the
in-process gateway (routing, limits, budget reservation, ledger), scored and
stored, progress published. Cases per second = N / the run's wall time; the
case latency percentiles are the runner's own (target call only).

Concurrency is bounded twice: by the experiment's `concurrency` (at most 32)
and by the tenant's limits. The last scenario gives the experiment's key a
limit of 60 requests a minute (a burst of 60, then one a second): the runner
waits out each 429's Retry-After and no case fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.gateway import (  # noqa: E402
    RUN_DIR,
    TENANT_PREFIX,
    Processes,
    free_port,
    provision_bench_tenant,
    register_upstreams,
    registry_model_id,
    remove_bench_tenants,
    setup_django,
    wait_ready,
)

DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "evals.json"
UPSTREAMS = {"0ms": 0, "500ms": 500}
MAX_TOKENS = 16
LIMITED_RPM = 60


@dataclass(frozen=True)
class Scenario:
    upstream: str
    concurrency: int
    cases: int
    requests_per_minute: int | None = None  # the key's own limit; None: the unbounded plan's


@dataclass(frozen=True)
class Measured:
    scenario: Scenario
    seconds: float
    cases_per_second: float
    passed: int
    errors: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    status: str


def scenarios(quick: bool) -> list[Scenario]:
    if quick:
        return [Scenario("0ms", 8, 200), Scenario("500ms", 8, 48), Scenario("500ms", 32, 128)]
    return [
        Scenario("0ms", 1, 300),
        Scenario("0ms", 8, 1000),
        Scenario("0ms", 32, 1000),
        Scenario("500ms", 1, 20),
        Scenario("500ms", 8, 96),
        Scenario("500ms", 32, 320),
        Scenario("0ms", 8, LIMITED_RPM + 30, requests_per_minute=LIMITED_RPM),
    ]


def start_simulators(processes: Processes) -> dict[str, str]:
    urls = {}
    for upstream, latency_ms in UPSTREAMS.items():
        port = free_port()
        command = [sys.executable, "manage.py", "simulated_provider", "--port", str(port)]
        command += ["--latency-ms", str(latency_ms), "--ttft-ms", "0", "--tokens-per-second", "0"]
        processes.start(f"evals-simulator-{upstream}", command)
        urls[upstream] = f"http://127.0.0.1:{port}"
    for upstream, url in urls.items():
        wait_ready(processes, f"evals-simulator-{upstream}", f"{url}/v1/models")
    return urls


def unregister_upstreams() -> None:
    from routing.models import Provider, ProviderModel

    ProviderModel.objects.filter(model_id__in=[registry_model_id(u) for u in UPSTREAMS]).delete()
    Provider.objects.filter(slug__in=[f"bench-sim-{u}" for u in UPSTREAMS]).delete()


def make_version(cases: int) -> Any:
    """A dataset version of `cases` chats, each asserting a word every answer holds."""
    from evals.models import Case, Dataset, DatasetVersion

    dataset = Dataset.objects.create(name=f"bench-{uuid.uuid4().hex[:10]}")
    version = DatasetVersion.objects.create(
        dataset=dataset, version=1, assertions=[{"type": "regex", "pattern": r"\w"}]
    )
    Case.objects.bulk_create(
        Case(
            version=version,
            key=f"case-{n:05}",
            position=n,
            input={"messages": [{"role": "user", "content": f"Benchmark case number {n}."}]},
        )
        for n in range(cases)
    )
    return version


def bench_key(tenant: Any, requests_per_minute: int | None, default_key: Any) -> Any:
    from tenants.models import ApiKeyScope
    from tenants.services import create_api_key

    if requests_per_minute is None:
        return default_key
    issued = create_api_key(
        tenant, name="bench limited", scopes=[ApiKeyScope.INFERENCE], requests_per_minute=requests_per_minute
    )
    return issued.api_key


def run_scenario(scenario: Scenario, tenant: Any, default_key: Any) -> Measured:
    from evals import runner, services
    from evals.models import Experiment

    version = make_version(scenario.cases)
    target = {"model": registry_model_id(scenario.upstream), "params": {"max_tokens": MAX_TOKENS}}
    api_key = bench_key(tenant, scenario.requests_per_minute, default_key)
    experiment = services.create_experiment(
        version, "model", target, [], scenario.concurrency, api_key, enqueue=False
    )
    started = time.perf_counter()
    runner.run(experiment.pk)
    seconds = time.perf_counter() - started
    experiment = Experiment.objects.get(pk=experiment.pk)
    aggregates = experiment.aggregates or {}
    return Measured(
        scenario=scenario,
        seconds=seconds,
        cases_per_second=scenario.cases / seconds,
        passed=aggregates.get("passed", 0),
        errors=aggregates.get("errors", 0),
        latency_p50_ms=aggregates.get("latency_ms", {}).get("p50"),
        latency_p95_ms=aggregates.get("latency_ms", {}).get("p95"),
        status=experiment.status,
    )


def print_row(measured: Measured) -> None:
    scenario = measured.scenario
    limit = f"{scenario.requests_per_minute} rpm" if scenario.requests_per_minute else "unbounded"
    p50, p95 = measured.latency_p50_ms or 0.0, measured.latency_p95_ms or 0.0
    print(
        f"{scenario.upstream:>6} {scenario.concurrency:>5} {limit:>10} {scenario.cases:>6} "
        f"{measured.seconds:>8.2f} {measured.cases_per_second:>9.1f} {p50:>8.1f} {p95:>8.1f} "
        f"{measured.passed:>6} {measured.errors:>6} {measured.status:>10}",
        flush=True,
    )


HEADER = (
    f"{'up':>6} {'conc':>5} {'limit':>10} {'cases':>6} {'seconds':>8} {'cases/s':>9} "
    f"{'p50 ms':>8} {'p95 ms':>8} {'passed':>6} {'errors':>6} {'status':>10}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three short scenarios")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args()
    setup_django()
    from django.core.management import call_command
    from django_tenants.utils import tenant_context

    from ingestion.runtime import close_runtime
    from tenants.models import Tenant
    from tenants.selectors import find_usable_api_key

    call_command("bootstrap", verbosity=0)  # a fresh database: migrated, the tenant template
    remove_bench_tenants()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    processes = Processes(RUN_DIR)
    measured: list[Measured] = []
    try:
        register_upstreams(start_simulators(processes))
        slug = f"{TENANT_PREFIX}evals-{uuid.uuid4().hex[:6]}"
        default_key = find_usable_api_key(provision_bench_tenant(slug))
        tenant = Tenant.objects.get(slug=slug)
        print(HEADER)
        with tenant_context(tenant):
            for scenario in scenarios(args.quick):
                measured.append(run_scenario(scenario, tenant, default_key))
                print_row(measured[-1])
    finally:
        close_runtime()
        processes.stop_all()
        unregister_upstreams()
        remove_bench_tenants()
    report = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "scenarios": [asdict(row) for row in measured],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
