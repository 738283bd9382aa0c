"""A Celery worker process killed (SIGKILL) in the middle of a run: the task is
delivered again to another worker, which resumes from the run's events, and no
side effect happens twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection
from django_tenants.utils import tenant_context

from agents.models import Run, RunStatus
from agents.tests.test_celery_runs import finished, start
from testing.agents import Ledger
from testing.database import committed
from testing.tenants import TenantFixture

# A broker that hands a dead worker's unacknowledged task to another worker after 2 s
# (production: CELERY_VISIBILITY_TIMEOUT, 15 min; the run lock makes either safe).
WORKER_SCRIPT = """
import sys
from aiaas.celery import app
app.conf.broker_transport_options = {
    "visibility_timeout": 2, "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
}
app.worker_main([
    "worker", "-Q", sys.argv[1], "--pool", "solo", "--loglevel", "WARNING", "-n", sys.argv[2],
    "--without-mingle", "--without-gossip", "--without-heartbeat",
])
"""
SPEC: dict[str, Any] = {
    "name": "killed",
    "steps": [
        {"id": "hotel", "kind": "tool", "tool": "reserve", "input": {"resource": "hotel"}},
        {"id": "slow", "kind": "tool", "tool": "reserve", "input": {"resource": "slowpoke"}},
        {"id": "car", "kind": "tool", "tool": "reserve", "input": {"resource": "car"}},
    ],
}


def database_url_of_this_run() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}"))


def worker_environment(settings: Any) -> dict[str, str]:
    """A worker process's environment: this run's database, usage stream and trusted tools."""
    return {
        **os.environ,
        "DATABASE_URL": database_url_of_this_run(),
        "USAGE_STREAM": settings.USAGE_STREAM,
        "AGENT_TOOL_MANIFEST_DIRS": ",".join(settings.AGENT_TOOL_MANIFEST_DIRS),
        "AGENT_TOOL_PUBLIC_KEYS": ",".join(f"{k}={v}" for k, v in settings.AGENT_TOOL_PUBLIC_KEYS.items()),
        "AGENT_TOOL_ALLOWED_HOSTS": ",".join(settings.AGENT_TOOL_ALLOWED_HOSTS),
        "OUTBOUND_DEFAULT_PORTS": ",".join(settings.OUTBOUND_DEFAULT_PORTS),
    }


@contextmanager
def worker_process(
    queue: str, name: str, environ: dict[str, str], log: IO[bytes] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process on `queue` (its log lines to `log`, if given)."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter, our script
        [sys.executable, "-c", WORKER_SCRIPT, queue, name], cwd=settings.BASE_DIR, env=environ, stderr=log
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def call_requested(tenant: TenantFixture, run_id: int, step_id: str) -> bool:
    def read() -> bool:
        with tenant_context(tenant.tenant):
            return (
                Run.objects.get(pk=run_id).events.filter(type="tool.call.requested", step_id=step_id).exists()
            )

    return committed(read)


def test_a_worker_killed_mid_step_is_replaced_and_no_effect_repeats(
    serving_tenant: TenantFixture, tools: Ledger, simulator: str, settings: Any, tmp_path: Path
) -> None:
    queue = f"test-killed-{os.getpid()}"
    settings.AGENT_RUNS_QUEUE = queue
    tools.faults["slowpoke"] = "slow"
    environ = worker_environment(settings)
    with worker_process(queue, f"first-{os.getpid()}@test", environ) as first:
        run_id = start(serving_tenant, SPEC, {})
        wait_for(lambda: call_requested(serving_tenant, run_id, "slow"))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

    with worker_process(queue, f"second-{os.getpid()}@test", environ):
        run = finished(serving_tenant, run_id, timeout=40)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert dict(tools.effects) == {"hotel": 1, "slowpoke": 1, "car": 1}
    assert tools.calls["hotel"] == 1  # the completed step was not repeated

    def types() -> list[str]:
        with tenant_context(serving_tenant.tenant):
            return list(Run.objects.get(pk=run_id).events.order_by("seq").values_list("type", flat=True))

    recorded = committed(types)
    assert recorded.count("run.started") == 1
    assert recorded.count("run.resumed") == 1
    assert recorded.count("tool.call.requested") == 3
