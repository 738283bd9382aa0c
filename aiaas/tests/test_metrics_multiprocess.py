"""Two uvicorn processes sharing one PROMETHEUS_MULTIPROC_DIR (what the launcher
and production run): a scrape of either one counts the requests both served."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.db import connection

from testing.metrics import scrape, value
from testing.tenants import TenantFixture

STARTUP_SECONDS = 90.0
CHAT = {"route": "/v1/chat/completions", "method": "POST", "status_class": "2xx"}


def database_url_of_this_run() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def uvicorn_process(environ: dict[str, str]) -> Iterator[str]:
    """The platform served by a uvicorn process of its own; yields its root URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "aiaas.asgi:application", "--port", str(port)]
    command += ["--lifespan", "on", "--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=environ)  # noqa: S603 - our command
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_live(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/livez", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"uvicorn at {url} did not start")


def chat(url: str, key: str) -> httpx.Response:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "sim-small", "max_tokens": 8, "messages": [{"role": "user", "content": "Two of us."}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def test_a_scrape_of_one_process_counts_the_requests_of_both(
    gateway: str, serving_tenant: TenantFixture, tmp_path: Path
) -> None:
    environ = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_run(),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    key = serving_tenant.admin_key
    with ExitStack() as stack:
        first, second = (stack.enter_context(uvicorn_process(environ)) for _ in range(2))
        answers = [chat(first, key) for _ in range(2)] + [chat(second, key) for _ in range(3)]
        time.sleep(0.5)  # a request is counted once its last byte is sent
        counted = [scrape(first), scrape(second)]

    completion_tokens = sum(answer.json()["usage"]["completion_tokens"] for answer in answers)
    for samples in counted:
        assert value(samples, "aiaas_http_requests_total", **CHAT) == 5
        assert value(samples, "aiaas_tokens_total", model="sim-small", kind="completion") == completion_tokens
        assert value(samples, "aiaas_upstream_latency_seconds_count", model="sim-small") == 5
    writers = {path.stem.rsplit("_", 1)[-1] for path in tmp_path.glob("counter_*.db")}
    assert len(writers) == 2
