"""Load test: the platform's traffic mix, with pass/fail thresholds checked at the end.

    LOAD_CREDENTIALS=.data/load-credentials.json locust -f bench/load/locustfile.py \\
        --headless -u 20 -r 5 -t 60s --host http://localhost:8000

`make load` prepares the credentials (bench/load/tenant.py) and runs this
against `make run`. Run it as a process of its own: Locust monkey-patches the
standard library with gevent on import.

Users (weights): API clients (6) calling /v1 chat completions, plain and
streamed (SSE, timed to the last event), embeddings, /v1/models and an /api
read; WebSocket chats (2) over /ws/v1/chat/completions, timed from the
handshake to the `done` event; dashboard users (2), signed in through the login
form, opening the overview, keys and usage pages.

At the end every class of request (bench/load/thresholds.py) must have been made, its 95th
percentile be under its threshold and the error rate under
LOAD_MAX_ERROR_RATE (0.01); otherwise the exit code is 1. LOAD_REPORT names a
JSON file for the figures. LOAD_P95_SCALE multiplies every threshold (a slower
machine), LOAD_WAIT_SECONDS ("min,max", default "0.5,1.5") is each user's pause.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import websocket
from locust import HttpUser, User, between, events, task
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, wherever Locust is started
from bench.load.thresholds import MAX_ERROR_RATE, THRESHOLDS

MODEL = os.environ.get("LOAD_MODEL", "sim-small")
EMBEDDING_MODEL = os.environ.get("LOAD_EMBEDDING_MODEL", "local-embed")
# Django answers /api only on a host ALLOWED_HOSTS names; /v1 and /ws on any.
API_HOST = os.environ.get("LOAD_API_HOST", "localhost")
CHAT_BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello to the load test."}],
    "max_tokens": 16,
}
WAIT_MIN, WAIT_MAX = (float(part) for part in os.environ.get("LOAD_WAIT_SECONDS", "0.5,1.5").split(","))


def credentials() -> dict[str, str]:
    """tenant_host, api_key, owner_email, owner_password (bench/load/tenant.py writes them)."""
    path = os.environ.get("LOAD_CREDENTIALS", ".data/load-credentials.json")
    return dict(json.loads(Path(path).read_text()))


CREDENTIALS = credentials()
API_HEADERS = {"Authorization": f"Bearer {CREDENTIALS['api_key']}", "Host": API_HOST}


def record(
    environment: Environment, request_type: str, name: str, started: float, error: Exception | None
) -> None:
    environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=(time.perf_counter() - started) * 1000,
        response_length=0,
        exception=error,
        context={},
    )


def timed(environment: Environment, request_type: str, name: str, action: Callable[[], None]) -> None:
    """Run `action`, recording its whole duration (not only until the headers) under `name`."""
    started = time.perf_counter()
    try:
        action()
    except Exception as error:
        record(environment, request_type, name, started, error)
    else:
        record(environment, request_type, name, started, None)


class ApiUser(HttpUser):
    weight = 6
    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self) -> None:
        self.streams = requests.Session()

    def on_stop(self) -> None:
        self.streams.close()

    @task(4)
    def chat(self) -> None:
        with self.client.post(
            "/v1/chat/completions", json=CHAT_BODY, headers=API_HEADERS, name="chat", catch_response=True
        ) as response:
            if response.status_code != 200 or not response.json().get("choices"):
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(2)
    def chat_stream(self) -> None:
        def stream() -> None:
            # A plain session: Locust's would record the request when its headers arrive.
            with self.streams.post(
                f"{self.host}/v1/chat/completions",
                json={**CHAT_BODY, "stream": True},
                headers=API_HEADERS,
                stream=True,
                timeout=30,
            ) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                lines = [line for line in response.iter_lines(decode_unicode=True) if line]
            if not lines or lines[-1] != "data: [DONE]":
                raise RuntimeError(f"the stream did not end with [DONE]: {lines[-1:]}")

        timed(self.environment, "SSE", "chat stream", stream)

    @task(2)
    def embeddings(self) -> None:
        with self.client.post(
            "/v1/embeddings",
            json={"model": EMBEDDING_MODEL, "input": ["load test sentence one", "and a second one"]},
            headers=API_HEADERS,
            name="embeddings",
            catch_response=True,
        ) as response:
            if response.status_code != 200 or len(response.json().get("data", [])) != 2:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(1)
    def models(self) -> None:
        self.client.get("/v1/models", headers=API_HEADERS, name="models")

    @task(1)
    def api_keys(self) -> None:
        self.client.get("/api/v1/keys/", headers=API_HEADERS, name="api keys")


class WebSocketChatUser(User):
    weight = 2
    wait_time = between(WAIT_MIN, WAIT_MAX)

    def ws_url(self) -> str:
        base = urlsplit(self.host or "")
        scheme = "wss" if base.scheme == "https" else "ws"
        return f"{scheme}://{base.netloc}/ws/v1/chat/completions"

    @task
    def chat(self) -> None:
        def converse() -> None:
            socket = websocket.create_connection(
                self.ws_url(),
                header=[f"Authorization: {API_HEADERS['Authorization']}"],
                host=API_HOST,
                timeout=30,
            )
            try:
                socket.send(json.dumps(CHAT_BODY))
                while True:
                    event = json.loads(socket.recv())
                    if event["type"] == "done":
                        return
                    if event["type"] == "error":
                        raise RuntimeError(f"{event['status']}: {event['error']['message']}")
            finally:
                socket.close()

        timed(self.environment, "WS", "ws chat", converse)


class DashboardUser(HttpUser):
    weight = 2
    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self) -> None:
        headers = {"Host": CREDENTIALS["tenant_host"]}
        page = self.client.get("/login/", headers=headers, name="login")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        form = {
            "csrfmiddlewaretoken": token.group(1) if token else "",
            "username": CREDENTIALS["owner_email"],
            "password": CREDENTIALS["owner_password"],
        }
        with self.client.post(
            "/login/", data=form, headers=headers, name="login", allow_redirects=False, catch_response=True
        ) as response:
            if response.status_code != 302:
                response.failure(f"login answered {response.status_code}")

    def page(self, path: str, name: str) -> None:
        with self.client.get(
            path,
            headers={"Host": CREDENTIALS["tenant_host"]},
            name=name,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code} (a redirect is a lost session)")

    @task(2)
    def overview(self) -> None:
        self.page("/dashboard/", "dashboard overview")

    @task(1)
    def keys(self) -> None:
        self.page("/dashboard/keys/", "dashboard keys")

    @task(1)
    def usage(self) -> None:
        self.page("/dashboard/usage/", "dashboard usage")


def verdict(environment: Environment) -> dict[str, Any]:
    """Each class's figures and every threshold it broke."""
    scale = float(os.environ.get("LOAD_P95_SCALE", "1"))
    max_error_rate = float(os.environ.get("LOAD_MAX_ERROR_RATE", MAX_ERROR_RATE))
    stats = environment.stats
    classes, failures = {}, []
    for name, limit in THRESHOLDS.items():
        entries = [entry for (entry_name, _), entry in stats.entries.items() if entry_name == name]
        requests = sum(entry.num_requests for entry in entries)
        if not requests:
            failures.append(f"{name}: no requests made")
            continue
        entry = max(entries, key=lambda entry: entry.num_requests)
        p95 = entry.get_response_time_percentile(0.95)
        classes[name] = {
            "requests": requests,
            "failures": sum(entry.num_failures for entry in entries),
            "rps": sum(entry.total_rps for entry in entries),
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p95_ms": p95,
            "p95_limit_ms": limit * scale,
        }
        if p95 > limit * scale:
            failures.append(f"{name}: p95 {p95:.0f} ms over {limit * scale:.0f} ms")
    total = stats.total
    error_rate = total.num_failures / total.num_requests if total.num_requests else 1.0
    if error_rate > max_error_rate:
        failures.append(f"error rate {error_rate:.2%} over {max_error_rate:.2%}")
    return {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "error_rate": error_rate,
        "rps": total.total_rps,
        "classes": classes,
        "errors": {
            f"{error.method} {error.name}: {error.error}": error.occurrences
            for error in stats.errors.values()
        },
        "broken_thresholds": failures,
        "passed": not failures,
    }


def check_thresholds(environment: Environment, **kwargs: Any) -> None:
    result = verdict(environment)
    print(f"\n{'class':<20} {'requests':>8} {'failed':>6} {'p50 ms':>7} {'p95 ms':>7} {'limit':>7}")
    for name, figures in result["classes"].items():
        print(
            f"{name:<20} {figures['requests']:>8} {figures['failures']:>6} {figures['p50_ms']:>7.0f}"
            f" {figures['p95_ms']:>7.0f} {figures['p95_limit_ms']:>7.0f}"
        )
    print(f"error rate {result['error_rate']:.2%}, {result['rps']:.1f} requests/s")
    for error, occurrences in result["errors"].items():
        print(f"error x{occurrences}: {error[:300]}")
    for failure in result["broken_thresholds"]:
        print(f"FAILED: {failure}")
    print("PASSED" if result["passed"] else "FAILED")
    if report := os.environ.get("LOAD_REPORT"):
        Path(report).write_text(json.dumps(result, indent=2) + "\n")
    if not result["passed"]:
        environment.process_exit_code = 1


events.quitting.add_listener(check_thresholds)
