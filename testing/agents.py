"""Test helpers for agents: signed tool manifests, and a real HTTP service the tools
call, which applies each effect once per idempotency key and fails on request."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytest_django import Settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agents.tools.manifests import public_key_text, sign_manifest
from testing.servers import LOOPBACK_SERVER_PORTS, serving

SLOW_CALL_SECONDS = 2.0


@dataclass
class Ledger:
    """What the service did: the effects in force per resource, and every call seen.

    `faults` maps a resource to "before" (answer 500 without applying),
    "after" (apply, then answer 500): a tool failing before or after its side
    effect, or "slow" (apply after SLOW_CALL_SECONDS).
    """

    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key -> effect
    undone: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    effects: Counter[str] = field(default_factory=Counter)  # resource -> times actually applied
    faults: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def in_force(self) -> list[str]:
        return sorted(e["resource"] for k, e in self.applied.items() if k not in self.undone)

    def reset(self) -> None:
        with self.lock:
            self.applied.clear()
            self.undone.clear()
            self.calls.clear()
            self.effects.clear()
            self.faults.clear()


def build_app(ledger: Ledger) -> Starlette:
    async def apply(request: Request) -> JSONResponse:
        body = await request.json()
        key = request.headers.get("idempotency-key", "")
        resource = str(body.get("resource", ""))
        fault = ledger.faults.get(resource)
        if fault == "slow":  # the call takes a while: time to kill a worker in the middle of it
            await asyncio.sleep(SLOW_CALL_SECONDS)
        with ledger.lock:
            ledger.calls[resource] += 1
            if fault == "before":
                return JSONResponse({"error": "injected failure before the effect"}, 500)
            if key not in ledger.applied:
                ledger.applied[key] = {"resource": resource}
                ledger.effects[resource] += 1
        if fault == "after":
            return JSONResponse({"error": "injected failure after the effect"}, 500)
        return JSONResponse({"reservation": key, "resource": resource})

    async def undo(request: Request) -> JSONResponse:
        body = await request.json()
        original = request.headers.get("idempotency-key", "").removesuffix(":compensate")
        if ledger.faults.get(f"undo:{body.get('resource', '')}") == "before":
            return JSONResponse({"error": "injected failure of the compensation"}, 500)
        with ledger.lock:
            ledger.calls[f"undo:{body.get('resource', '')}"] += 1
            ledger.undone.add(original)  # undoing what never happened is a no-op
        return JSONResponse({"undone": original})

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(
            {"method": request.method, "idempotency_key": request.headers.get("idempotency-key")}
        )

    return Starlette(
        routes=[
            Route("/apply", apply, methods=["POST"]),
            Route("/undo", undo, methods=["POST"]),
            Route("/echo", echo, methods=["GET", "POST"]),
        ]
    )


@contextmanager
def running_tool_service(ledger: Ledger) -> Iterator[str]:
    def build(host: str, port: int) -> uvicorn.Server:
        return uvicorn.Server(uvicorn.Config(build_app(ledger), host=host, port=port, log_level="warning"))

    with serving(build, "/echo") as url:
        yield url


def tool_manifests(service_url: str) -> list[dict[str, Any]]:
    """`reserve` (a side effect, undone by `release`), `release`, `http` and `email`."""
    resource = {"type": "object", "properties": {"resource": {"type": "string"}}, "required": ["resource"]}
    return [
        {
            "name": "reserve",
            "version": "1",
            "implementation": "webhook",
            "endpoint": f"{service_url}/apply",
            "input_schema": resource,
            "output_schema": {"type": "object", "required": ["reservation"]},
            "side_effect": "write",
            "compensation": {"tool": "release", "input": {"resource": "{{ input.resource }}"}},
            "timeout_seconds": 5,
            "max_attempts": 2,
        },
        {
            "name": "release",
            "version": "1",
            "implementation": "webhook",
            "endpoint": f"{service_url}/undo",
            "input_schema": resource,
            "side_effect": "write",
            "timeout_seconds": 5,
            "max_attempts": 2,
        },
        {
            "name": "http",
            "version": "1",
            "implementation": "http_request",
            "input_schema": {"type": "object", "required": ["url"]},
            "side_effect": "none",
            "timeout_seconds": 5,
            "max_attempts": 1,
        },
        {
            "name": "email",
            "version": "1",
            "implementation": "email",
            "input_schema": {
                "type": "object",
                "required": ["to", "subject", "body"],
                "properties": {
                    "to": {"type": "string"},
                    "subject": {"type": "string"},
                    "body": {"type": "string"},
                },
            },
            "side_effect": "write",
            "timeout_seconds": 5,
            "max_attempts": 1,
        },
    ]


def write_signed_manifests(
    directory: Path, manifests: list[dict[str, Any]], key: Ed25519PrivateKey, key_id: str
) -> None:
    for manifest in manifests:
        signed = sign_manifest(manifest, key, key_id)
        (directory / f"{manifest['name']}.json").write_text(json.dumps(signed))


def trust_signed_tools(directory: Path, service_url: str, settings: Settings) -> Ed25519PrivateKey:
    """The test manifests signed and trusted, the service's host and port allowed, through
    pytest-django's `settings` fixture (so undone after the test)."""
    key = Ed25519PrivateKey.generate()
    write_signed_manifests(directory, tool_manifests(service_url), key, "test")
    settings.AGENT_TOOL_MANIFEST_DIRS = [str(directory)]
    settings.AGENT_TOOL_PUBLIC_KEYS = {"test": public_key_text(key)}
    settings.AGENT_TOOL_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.OUTBOUND_DEFAULT_PORTS = LOOPBACK_SERVER_PORTS
    return key
