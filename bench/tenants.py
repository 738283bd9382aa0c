"""Tenant scale: provisioning, migrations, latency and PostgreSQL's catalog from 10 to 10,000 tenants.

    python bench/tenants.py [--checkpoints 10,1000,10000] [--migrate-at 1000,10000]
                            [--batch 100] [--workers 2] [--grow-minutes 40] [--json PATH]
    python bench/tenants.py --chart-only      # redraw bench/tenants.svg from the JSON
    python bench/tenants.py --latency-only    # time requests on the tenants already there

`make bench-tenants` runs it under the launcher on a fresh embedded PostgreSQL
and Redis of its own (.data/bench-tenants/), so the test database is left alone.

Tenants are made in batches by `tenants.batch.provision_tenants` (the template's
dump replayed per schema), `--workers` batches at a time. At each checkpoint,
with the platform served by uvicorn beside it:

- provisioning: seconds per tenant of the last batches, and of three tenants
  made one by one through `provision_tenant` (the signup path, clone_schema());
- latency: /v1 chat completions against the simulated provider with one
  tenant's key and with a different tenant's key each request, /api reads with
  a different tenant's key each request, and the dashboard's overview page for a
  logged-in owner;
- PostgreSQL: pg_class and pg_attribute rows, database size, and one
  connection's memory fresh, after one tenant's tables, after every tenant's;
- at --migrate-at counts and at the last checkpoint: `manage.py migrate_all`
  applying a migration that adds a column to a table in every tenant schema
  (bench/scale_probe), then again with nothing to apply.

Growing stops after --grow-minutes; the last checkpoint is then taken at the
count reached. The JSON is written after every checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import secrets
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "tenants.json"
DEFAULT_SVG_PATH = REPO_ROOT / "bench" / "tenants.svg"
SETTINGS_MODULE = "bench.tenant_settings"
PROBE_SLUG = "probe"
PROBE_PASSWORD = "correct-horse-battery-staple-7"  # noqa: S105 - a bench tenant's owner
OWNER_EMAIL = "owner@bench.example"
LATENCY_REQUESTS = 100
SINGLE_PROVISIONS = 3
CHAT_BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", default="10,1000,10000", help="tenant counts to measure at")
    parser.add_argument("--migrate-at", default="1000", help="also time migrations at these checkpoints")
    parser.add_argument("--batch", type=int, default=100, help="tenants per provisioning batch (100)")
    parser.add_argument("--workers", type=int, default=2, help="batches provisioned at once (2)")
    parser.add_argument("--grow-minutes", type=float, default=40.0, help="stop growing after this long (40)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    parser.add_argument("--svg", type=Path, default=DEFAULT_SVG_PATH)
    parser.add_argument("--chart-only", action="store_true", help="redraw the chart from --json and exit")
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only time requests on the database as it is (an earlier run's), printing one JSON line",
    )
    args = parser.parse_args(argv)
    args.checkpoints = sorted(int(count) for count in args.checkpoints.split(","))
    args.migrate_at = {int(count) for count in args.migrate_at.split(",") if count}
    if args.batch < 1 or args.workers < 1 or args.checkpoints[0] < 1:
        parser.error("--batch, --workers and every checkpoint must be at least 1")
    return args


def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ.setdefault("BENCH_PROBE_STEP", "step1")
    import django

    django.setup()


def percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def describe_ms(seconds: list[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p95_ms": percentile(seconds, 95) * 1000,
        "max_ms": max(seconds) * 1000,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@contextmanager
def serving() -> Iterator[tuple[str, str]]:
    """The simulated provider and the platform (uvicorn, one process); yields both URLs."""
    python = sys.executable
    provider_port, platform_port = free_port(), free_port()
    environ = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    provider = subprocess.Popen(
        [python, "manage.py", "simulated_provider", "--port", str(provider_port)],
        cwd=REPO_ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [
            python,
            "-m",
            "uvicorn",
            "aiaas.asgi:application",
            "--port",
            str(platform_port),
            "--http",
            "aiaas.http_protocol:BoundedHeadersProtocol",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        # Plain HTTP here: cookies without the Secure flag, or the client keeps no session.
        env={**environ, "ACCESS_LOG": "false", "SECURE_COOKIES": "false"},
    )
    try:
        provider_url, platform_url = f"http://127.0.0.1:{provider_port}", f"http://127.0.0.1:{platform_port}"
        wait_for(provider_url + "/v1/models", provider)
        wait_for(platform_url + "/healthz", server)
        yield provider_url + "/v1", platform_url
    finally:
        for process in (server, provider):
            process.terminate()
        for process in (server, provider):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


class Fleet:
    """The bench's tenants: the keys of every batch tenant, grown in batches."""

    def __init__(self, run_id: str, batch: int, workers: int) -> None:
        self.run_id = run_id
        self.batch = batch
        self.workers = workers
        self.keys: list[str] = []
        self.batches: list[dict[str, float]] = []
        self.made = 0
        self.dump = ""

    def count(self) -> int:
        from tenants.models import Tenant

        return Tenant.objects.exclude(schema_name="public").count()

    def grow_to(self, target: int, deadline: float) -> None:
        from tenants.batch import template_dump

        self.dump = template_dump()  # the template may have been migrated since
        existing = self.count()
        with ThreadPoolExecutor(self.workers) as pool:
            while existing < target and time.monotonic() < deadline:
                slices: list[tuple[int, int]] = []
                for _ in range(self.workers):
                    size = min(self.batch, target - existing - sum(size for _, size in slices))
                    if size > 0:
                        slices.append((self.made, size))
                        self.made += size
                sizes = [size for _, size in slices]
                started = time.perf_counter()
                results = list(pool.map(self.provision_batch, slices))
                seconds = time.perf_counter() - started
                for keys in results:
                    self.keys.extend(keys)
                self.batches.append(
                    {
                        "existing": existing,
                        "tenants": sum(sizes),
                        "seconds": seconds,
                        "per_tenant": seconds / sum(sizes),
                    }
                )
                existing += sum(sizes)
                print(f"  {existing:>6} tenants  {seconds / sum(sizes):.3f} s per tenant", flush=True)

    def provision_batch(self, first_and_size: tuple[int, int]) -> list[str]:
        from django.db import connection

        from tenants.batch import TenantSpec, provision_tenants

        first, size = first_and_size
        specs = [
            TenantSpec(slug=f"b{self.run_id}-{index}", name=f"Bench {index}", owner_email=OWNER_EMAIL)
            for index in range(first, first + size)
        ]
        try:
            return [item.issued_key.secret for item in provision_tenants(specs, dump=self.dump)]
        finally:
            connection.close()

    def recent_per_tenant(self, batches: int = 5) -> float | None:
        recent = self.batches[-batches:]
        return sum(b["seconds"] for b in recent) / sum(b["tenants"] for b in recent) if recent else None


def single_provisions(run_id: str, label: str) -> list[float]:
    """Seconds for tenants made one at a time by provision_tenant (the signup path):
    SINGLE_PROVISIONS of them, fewer once a minute has gone."""
    from tenants.services import provision_tenant

    samples: list[float] = []
    while len(samples) < SINGLE_PROVISIONS and sum(samples) < 60:
        started = time.perf_counter()
        provision_tenant(
            slug=f"s{run_id}-{label}-{len(samples)}", name="Bench single", owner_email=OWNER_EMAIL
        )
        samples.append(time.perf_counter() - started)
    return samples


def connection_info() -> str:
    from django.db import connection
    from psycopg.conninfo import make_conninfo

    params = connection.get_connection_params()
    keys = {"dbname", "host", "port", "user", "password"}
    return make_conninfo(**{key: str(value) for key, value in params.items() if key in keys and value})


def catalog() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_attribute),"
            " (SELECT count(*) FROM pg_namespace), pg_database_size(current_database()),"
            " pg_total_relation_size('pg_class') + pg_total_relation_size('pg_attribute')"
            " + pg_total_relation_size('pg_depend') + pg_total_relation_size('pg_index')"
            " + pg_total_relation_size('pg_constraint') + pg_total_relation_size('pg_type')"
        )
        pg_class, pg_attribute, schemas, database_bytes, catalog_bytes = cursor.fetchone()
    return {
        "pg_class_rows": pg_class,
        "pg_attribute_rows": pg_attribute,
        "schemas": schemas,
        "database_bytes": database_bytes,
        "main_catalog_bytes": catalog_bytes,
    }


# Committed every 100 schemas: the locks of one transaction must fit the lock
# table (max_locks_per_transaction); what the backend caches stays.
TOUCH_EVERY_TENANT = """
DO $$
DECLARE schema text; touched int := 0;
BEGIN
  FOR schema IN SELECT schema_name FROM public.tenants_tenant WHERE schema_name <> 'public' LOOP
    EXECUTE format('SELECT 1 FROM %I.accounts_user LIMIT 1', schema);
    EXECUTE format('SELECT 1 FROM %I.django_session LIMIT 1', schema);
    touched := touched + 1;
    IF touched % 100 = 0 THEN COMMIT; END IF;
  END LOOP;
END $$
"""


def backend_memory(cursor: Any) -> dict[str, int]:
    cursor.execute(
        "SELECT sum(total_bytes), sum(total_bytes) FILTER (WHERE name = 'CacheMemoryContext'"
        " OR parent IN ('CacheMemoryContext', 'index info')) FROM pg_backend_memory_contexts"
    )
    total, cache = cursor.fetchone()
    cursor.execute("SELECT pg_backend_pid()")
    status = Path(f"/proc/{cursor.fetchone()[0]}/status").read_text()
    rss_anon = int(re.search(r"RssAnon:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    return {"contexts_bytes": int(total), "cache_bytes": int(cache or 0), "rss_anon_bytes": rss_anon}


def connection_memory() -> dict[str, Any]:
    """One backend's memory fresh, after one tenant's tables, after every tenant's."""
    import psycopg

    with psycopg.connect(connection_info(), autocommit=True) as conn, conn.cursor() as cursor:
        fresh = backend_memory(cursor)
        cursor.execute("SELECT 1 FROM t_probe.accounts_user LIMIT 1")
        cursor.execute("SELECT 1 FROM t_probe.django_session LIMIT 1")
        one = backend_memory(cursor)
        started = time.perf_counter()
        cursor.execute(TOUCH_EVERY_TENANT)
        every: dict[str, float] = {
            **backend_memory(cursor),
            "seconds_to_touch": time.perf_counter() - started,
        }
    return {"fresh": fresh, "one_tenant": one, "every_tenant": every}


def login(client: httpx.Client, host: str) -> None:
    page = client.get("/login/", headers={"Host": host})
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if token is None:
        raise RuntimeError(f"no login form on {host}: {page.status_code}")
    answer = client.post(
        "/login/",
        headers={"Host": host},
        data={"csrfmiddlewaretoken": token.group(1), "username": OWNER_EMAIL, "password": PROBE_PASSWORD},
    )
    if answer.status_code != 302:
        raise RuntimeError(f"login on {host} answered {answer.status_code}")


def timed(send: Callable[[int], httpx.Response], requests: int = LATENCY_REQUESTS) -> dict[str, float]:
    for index in range(10):
        send(index).raise_for_status()
    samples, errors = [], 0
    for index in range(requests):
        started = time.perf_counter()
        response = send(index)
        samples.append(time.perf_counter() - started)
        errors += response.status_code >= 400
    return {**describe_ms(samples), "errors": errors}


def latency(platform_url: str, probe_key: str, keys: list[str]) -> dict[str, Any]:
    chosen = random.sample(keys, min(len(keys), LATENCY_REQUESTS + 10))

    def key_for(index: int) -> str:
        return chosen[index % len(chosen)]

    # /v1 and /api answer on any allowed host; the dashboard on the tenant's.
    with httpx.Client(base_url=platform_url, headers={"Host": "localhost"}, timeout=30.0) as client:
        probe_host = f"{PROBE_SLUG}.localhost"
        results = {
            "chat_one_tenant": timed(
                lambda _: client.post(
                    "/v1/chat/completions", json=CHAT_BODY, headers={"Authorization": f"Bearer {probe_key}"}
                )
            ),
            "chat_many_tenants": timed(
                lambda index: client.post(
                    "/v1/chat/completions",
                    json=CHAT_BODY,
                    headers={"Authorization": f"Bearer {key_for(index)}"},
                )
            ),
            "api_many_tenants": timed(
                lambda index: client.get(
                    "/api/v1/keys/", headers={"Authorization": f"Bearer {key_for(index)}"}
                )
            ),
        }
        login(client, probe_host)
        results["dashboard_one_tenant"] = timed(
            lambda _: client.get("/dashboard/", headers={"Host": probe_host})
        )
    return results


def migrate(step: str, processes: int) -> dict[str, Any]:
    """`manage.py migrate_all` with BENCH_PROBE_STEP=`step`; its time and progress lines."""
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "migrate_all",
            "--processes",
            str(processes),
            "--progress-every",
            "500",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "BENCH_PROBE_STEP": step, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    lines = [line for line in result.stdout.splitlines() if line.startswith("migrate_all:")]
    for line in lines:
        print("   ", line, flush=True)
    if result.returncode:
        print(result.stderr[-3000:], file=sys.stderr)
    return {
        "step": step,
        "processes": processes,
        "seconds": seconds,
        "returncode": result.returncode,
        "lines": lines,
    }


def environment() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server_version = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'tenant_template'"
        )
        template_relations = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'tenant_template'"
        )
        template_tables = cursor.fetchone()[0]
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "postgresql": server_version,
        "template_tables": template_tables,
        "template_relations": template_relations,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.core.management import call_command

    from routing.services import register_simulated_provider
    from tenants.services import provision_tenant, update_api_key

    call_command("bootstrap", verbosity=0)
    run_id = "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
    probe = provision_tenant(
        slug=PROBE_SLUG, name="Bench probe", owner_email=OWNER_EMAIL, owner_password=PROBE_PASSWORD
    )
    # Its requests are timed back to back: past the default 60 a minute they would be 429s.
    update_api_key(probe.issued_key.api_key, {"requests_per_minute": 1_000_000, "tokens_per_minute": 10**9})
    fleet = Fleet(run_id, args.batch, args.workers)
    result: dict[str, Any] = {
        "benchmark": "tenant_scale",
        "started_at": datetime.now(UTC).isoformat(),
        "command": " ".join(["python", "bench/tenants.py", *sys.argv[1:]]),
        "environment": environment(),
        "checkpoints": [],
        "batches": fleet.batches,
    }
    grow_deadline = time.monotonic() + args.grow_minutes * 60
    steps = iter(["step2", "step3"])
    with serving() as (provider_url, platform_url):
        register_simulated_provider(provider_url)
        for target in args.checkpoints:
            print(f"growing to {target} tenants", flush=True)
            fleet.grow_to(target, grow_deadline)
            existing = fleet.count()
            last = target == args.checkpoints[-1] or time.monotonic() >= grow_deadline
            print(f"checkpoint at {existing} tenants", flush=True)
            point: dict[str, Any] = {
                "target": target,
                "tenants": existing,
                "at": datetime.now(UTC).isoformat(),
            }
            point["batch_seconds_per_tenant"] = fleet.recent_per_tenant()
            point["single_provision_seconds"] = single_provisions(run_id, str(target))
            point["catalog"] = catalog()
            point["connection_memory"] = connection_memory()
            point["latency"] = latency(
                platform_url, probe.issued_key.secret, fleet.keys or [probe.issued_key.secret]
            )
            if target in args.migrate_at or last:
                step = next(steps, None)
                if step is not None:
                    point["migration_added_column"] = migrate(step, args.workers)
                    point["migration_nothing_to_apply"] = migrate(step, args.workers)
            result["checkpoints"].append(point)
            write(args, result)
            print(json.dumps({key: point[key] for key in ("tenants", "single_provision_seconds", "catalog")}))
            if last:
                break
    result["finished_at"] = datetime.now(UTC).isoformat()
    return result


def latency_only() -> dict[str, Any]:
    """The latency measurement alone, on the tenants an earlier run left: new keys
    for a random sample of them and for the probe. Run it on two databases in
    turn (10 and 10,000 tenants) to compare them under the same machine load."""
    from routing.services import register_simulated_provider
    from tenants.models import ApiKeyScope, Tenant
    from tenants.services import create_api_key

    tenants = Tenant.objects.exclude(schema_name="public").exclude(slug=PROBE_SLUG)
    sample = list(tenants.order_by("?")[: LATENCY_REQUESTS + 10])
    keys = [
        create_api_key(tenant, name="bench latency", scopes=[ApiKeyScope.ADMIN]).secret for tenant in sample
    ]
    probe_key = create_api_key(
        Tenant.objects.get(slug=PROBE_SLUG),
        name="bench latency",
        scopes=[ApiKeyScope.ADMIN],
        requests_per_minute=1_000_000,
        tokens_per_minute=10**9,
    ).secret
    with serving() as (provider_url, platform_url):
        register_simulated_provider(provider_url)
        measured = latency(platform_url, probe_key, keys)
    return {"tenants": tenants.count(), "load_average": os.getloadavg(), "latency": measured}


def write(args: argparse.Namespace, result: dict[str, Any]) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    if args.latency_only:
        setup_django()
        print(json.dumps(latency_only()))
        return 0
    if not args.chart_only:
        setup_django()
        result = run(args)
        write(args, result)
        print(f"wrote {args.json}")
    from bench.tenants_chart import draw

    args.svg.write_text(draw(json.loads(args.json.read_text())))
    print(f"wrote {args.svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
