"""Work a tenant's spec or input controls is bounded: a template bomb fails its own
run with a clear error, run events and tool responses have size caps, and a run's
live stream keeps little of a long or large run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django_tenants.utils import tenant_context
from pytest_django import Settings

from agents import engine, events, services
from agents.models import Run, RunEvent, RunStatus
from agents.spec import SpecError, compile_spec
from agents.tests.factories import make_agent, make_run
from aiaas import outbound
from testing.agents import Ledger
from testing.tenants import TenantFixture

BOMB_SPEC: dict[str, Any] = {
    "name": "bomb",
    "steps": [
        {
            "id": "explode",
            "kind": "validate",
            "value": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "schema": {"type": "string"},
        }
    ],
}
ECHO_SPEC: dict[str, Any] = {
    "name": "echo",
    "steps": [{"id": "say", "kind": "validate", "value": "{{ input.text }}", "schema": {"type": "string"}}],
}


def execute(tenant: TenantFixture, run: Run) -> Run:
    with tenant_context(tenant.tenant):
        engine.execute_run(run.pk)
        run.refresh_from_db()
        return run


def test_a_template_bomb_fails_its_run_with_a_clear_error_and_the_next_run_goes_on(
    tenant: TenantFixture,
) -> None:
    bomb = execute(tenant, make_run(tenant, BOMB_SPEC))
    after = execute(tenant, make_run(tenant, ECHO_SPEC, {"text": "still here"}))

    assert bomb.status == RunStatus.FAILED
    assert bomb.error == "explode: the template's loops ran more than 100000 iterations"
    assert after.status == RunStatus.SUCCEEDED, after.error
    assert after.output == "still here"


def test_a_step_output_over_the_event_limit_fails_the_step(tenant: TenantFixture, settings: Settings) -> None:
    settings.AGENT_EVENT_MAX_BYTES = 1_000
    spec = {**ECHO_SPEC, "steps": [{**ECHO_SPEC["steps"][0], "value": "{{ 'x' * 5000 }}"}]}

    run = execute(tenant, make_run(tenant, spec))

    assert run.status == RunStatus.FAILED
    assert run.error == "say: the output of say is 5025 bytes of JSON, over the limit of 1000 for a run event"
    with tenant_context(tenant.tenant):
        assert not run.events.filter(type=events.STEP_SUCCEEDED).exists()


def test_an_input_over_the_event_limit_is_refused(tenant: TenantFixture, settings: Settings) -> None:
    settings.AGENT_EVENT_MAX_BYTES = 1_000
    agent = make_agent(tenant, {**ECHO_SPEC, "name": "echo-big-input"})

    with tenant_context(tenant.tenant), pytest.raises(services.InputError) as refused:
        services.start_run(agent, {"text": "y" * 2_000}, tenant.provisioned.issued_key.api_key)

    assert refused.value.path == "input"
    assert "over the limit of 1000 for a run event" in refused.value.message
    with tenant_context(tenant.tenant):
        assert not Run.objects.filter(agent=agent).exists()


def stream_event(seq: int, event_type: str, data: dict[str, Any]) -> RunEvent:
    return RunEvent(seq=seq, type=event_type, step_id="s", data=data, created_at=datetime.now(UTC))


def test_a_runs_stream_carries_data_of_its_first_events_only_and_never_more_than_the_cap(
    settings: Settings,
) -> None:
    settings.AGENT_RUN_STREAM_MAX_EVENTS = 3
    settings.AGENT_RUN_STREAM_EVENT_MAX_BYTES = 100
    run = Run(pk=7, stream_id="run_x")

    early = events.stream_payload(run, stream_event(3, events.STEP_SUCCEEDED, {"output": "ok"}))
    late = events.stream_payload(run, stream_event(4, events.STEP_SUCCEEDED, {"output": "ok"}))
    large = events.stream_payload(run, stream_event(2, events.STEP_SUCCEEDED, {"output": "z" * 200}))
    final = events.stream_payload(run, stream_event(9, events.EventType.RUN_SUCCEEDED, {"output": "done"}))

    assert early["data"] == {"output": "ok"}
    assert "truncated" not in early
    assert (late["data"], late["truncated"], late["seq"]) == (None, True, 4)
    assert (large["data"], large["truncated"]) == (None, True)
    assert final["data"] == {"output": "done"}


class BigBody(BaseHTTPRequestHandler):
    """200 with 10,000 bytes of JSON string, with or without a Content-Length (HTTP/1.0,
    the handler's default: without a length, the body ends with the connection)."""

    def do_GET(self) -> None:
        body = b'"' + b"b" * 9_998 + b'"'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path == "/sized":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def big_body_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BigBody)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("path", ["/sized", "/unsized"])
def test_a_tool_response_is_read_with_a_size_cap(path: str) -> None:
    with big_body_server() as url:

        def fetch(limit: int) -> Any:
            policy = outbound.Policy(exempt_hosts=frozenset({"127.0.0.1"}))
            return asyncio.run(
                outbound.request("GET", url + path, policy=policy, timeout_seconds=5, max_bytes=limit)
            )

        with pytest.raises(outbound.ResponseTooLargeError, match="over 1000"):
            fetch(1_000)
        status, _, body = fetch(20_000)

    assert status == 200
    assert body == "b" * 9_998


def test_a_run_whose_tool_answers_over_the_cap_fails_that_step(
    tenant: TenantFixture, tools: Ledger, tool_service: str, settings: Settings
) -> None:
    settings.AGENT_TOOL_RESPONSE_MAX_BYTES = 20
    spec = {
        "name": "fetch-big",
        "steps": [{"id": "get", "kind": "tool", "tool": "http", "input": {"url": f"{tool_service}/echo"}}],
    }

    run = execute(tenant, make_run(tenant, spec))

    assert run.status == RunStatus.FAILED
    assert run.error.startswith("get: http: the response is ")
    assert run.error.endswith("over 20")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "https://schemas.example/x.json"}, "remote references are not allowed"),
        ({"$ref": "file:///etc/passwd"}, "remote references are not allowed"),
        ({"type": "string", "pattern": "(?=a)b"}, 'is not a "regex"'),
        ({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(6_000)}}, "more than"),
    ],
)
def test_a_spec_schema_that_would_fetch_backtrack_or_sprawl_is_refused(
    schema: dict[str, Any], message: str
) -> None:
    spec = {
        "name": "schemas",
        "steps": [{"id": "check", "kind": "validate", "value": "x", "schema": schema}],
    }

    with pytest.raises(SpecError) as refused:
        compile_spec(spec)

    assert refused.value.path.startswith("steps[0].schema")
    assert message in refused.value.message
