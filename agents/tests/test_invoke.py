"""Calling a tool, without a worker: retries, timeouts and unexpected failures."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, cast

import pytest

from agents.tools import invoke
from agents.tools.manifests import ToolManifest
from aiaas.outbound import Policy
from gateway.resilience import RetryPolicy

EMAIL_SCHEMA = {"type": "object", "required": ["to", "subject", "body"]}
MESSAGE = {"to": "ops@example.com", "subject": "s", "body": "b"}


class OpenBreaker:
    """A circuit breaker that always lets the call through and remembers outcomes."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    async def acquire(self, key: str) -> str:
        return key

    async def record_failure(self, permit: str) -> None:
        self.outcomes.append("failure")

    async def record_success(self, permit: str) -> None:
        self.outcomes.append("success")

    async def release(self, permit: str) -> None:
        self.outcomes.append("released")


def email_manifest() -> ToolManifest:
    return ToolManifest(
        name="email",
        version="1",
        implementation="email",
        input_schema=EMAIL_SCHEMA,
        side_effect="write",
        timeout_seconds=0.2,
        max_attempts=3,
    )


def call(manifest: ToolManifest, breaker: OpenBreaker) -> Any:
    return asyncio.run(
        invoke.invoke(
            manifest,
            MESSAGE,
            "schema:run-1:notify",
            breaker=cast(Any, breaker),
            tenant_schema="schema",
            outbound=Policy(),
            retry_policy=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01),
        )
    )


def test_an_email_that_times_out_is_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    sends: list[str] = []
    done = threading.Event()

    def slow_send(tool_input: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        sends.append(idempotency_key)
        time.sleep(0.4)  # longer than the manifest's timeout; the thread goes on
        done.set()
        return {"message_id": idempotency_key}

    monkeypatch.setattr(invoke, "send_email", slow_send)

    with pytest.raises(invoke.ToolCallError) as error:
        call(email_manifest(), OpenBreaker())
    done.wait(2)

    assert sends == ["schema:run-1:notify"]
    assert error.value.applied == "unknown"


def test_an_unexpected_failure_is_a_tool_call_error_with_unknown_effect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(tool_input: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        raise KeyError("to")

    monkeypatch.setattr(invoke, "send_email", broken)
    breaker = OpenBreaker()

    with pytest.raises(invoke.ToolCallError) as error:
        call(email_manifest(), breaker)

    assert error.value.applied == "unknown"
    assert "KeyError" in error.value.message
    assert breaker.outcomes == ["failure"]
