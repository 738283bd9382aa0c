"""Custom scorers as signed tools, called over HTTP as agents call tools: a real
scoring service on a local port, manifests signed and trusted for the test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytest_django import Settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agents.tools.manifests import public_key_text
from evals.scorers import JudgeContext, Observation, Score, ScorerSpecError, build
from gateway.transports.inprocess import InProcessGateway
from tenants.models import ApiKey
from tenants.selectors import find_usable_api_key
from testing.agents import write_signed_manifests
from testing.servers import LOOPBACK_SERVER_PORTS, serving
from testing.tenants import TenantFixture

SCORE_INPUT_SCHEMA = {"type": "object", "required": ["input", "output", "expected"]}


class ScoringService:
    """Scores by whether the output holds the expected text; remembers each call's
    idempotency key and body."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def app(self) -> Starlette:
        async def contains(request: Request) -> JSONResponse:
            body = await request.json()
            self.calls.append((request.headers.get("idempotency-key", ""), body))
            found = str(body["expected"]) in str(body["output"])
            reason = "expected text found" if found else "expected text missing"
            return JSONResponse({"score": 1.0 if found else 0.0, "passed": found, "reason": reason})

        async def out_of_shape(request: Request) -> JSONResponse:
            return JSONResponse({"score": 7, "passed": True})

        async def broken(request: Request) -> JSONResponse:
            return JSONResponse({"error": "down"}, 500)

        async def ready(request: Request) -> JSONResponse:
            return JSONResponse({})

        return Starlette(
            routes=[
                Route("/contains", contains, methods=["POST"]),
                Route("/out-of-shape", out_of_shape, methods=["POST"]),
                Route("/broken", broken, methods=["POST"]),
                Route("/ready", ready, methods=["GET"]),
            ]
        )


@pytest.fixture(scope="module")
def scoring_service() -> Iterator[tuple[str, ScoringService]]:
    service = ScoringService()

    def build_server(host: str, port: int) -> uvicorn.Server:
        return uvicorn.Server(uvicorn.Config(service.app(), host=host, port=port, log_level="warning"))

    with serving(build_server, "/ready") as url:
        yield url, service


def webhook(name: str, endpoint: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1",
        "implementation": "webhook",
        "endpoint": endpoint,
        "input_schema": SCORE_INPUT_SCHEMA,
        "side_effect": "none",
        "timeout_seconds": 5,
        "max_attempts": 1,
        **fields,
    }


@pytest.fixture
def service(
    scoring_service: tuple[str, ScoringService], tmp_path: Path, settings: Settings
) -> ScoringService:
    """The scoring tools signed and trusted, their breakers closed."""
    url, service = scoring_service
    service.calls.clear()
    manifests = [
        webhook("score.contains", f"{url}/contains"),
        webhook("score.out-of-shape", f"{url}/out-of-shape"),
        webhook("score.broken", f"{url}/broken"),
        webhook("score.writes", f"{url}/contains", side_effect="write"),
        {
            "name": "score.http",
            "version": "1",
            "implementation": "http_request",
            "input_schema": {"type": "object", "required": ["url"]},
            "side_effect": "none",
        },
    ]
    key = Ed25519PrivateKey.generate()
    write_signed_manifests(
        tmp_path, [{k: v for k, v in m.items() if v != ""} for m in manifests], key, "evals"
    )
    settings.AGENT_TOOL_MANIFEST_DIRS = [str(tmp_path)]
    settings.AGENT_TOOL_PUBLIC_KEYS = {"evals": public_key_text(key)}
    settings.AGENT_TOOL_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.OUTBOUND_DEFAULT_PORTS = LOOPBACK_SERVER_PORTS
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        for breaker in client.scan_iter("breaker:{tool:*score.*"):
            client.delete(breaker)
    return service


@pytest.fixture
def api_key(platform_url: str, serving_tenant: TenantFixture) -> ApiKey:
    key = find_usable_api_key(serving_tenant.admin_key)
    assert key is not None
    return key


def observe(output: Any, expected: Any) -> Observation:
    return Observation("case-1", {"variables": {"order": "A-1"}}, expected, output, 80, Decimal(0))


def score(spec: dict[str, Any], observation: Observation, api_key: ApiKey, prefix: str = "req_x") -> Score:
    (scorer,) = build([spec])

    async def run() -> Score:
        gateway = InProcessGateway()
        try:
            return await scorer.score(observation, JudgeContext(gateway, api_key, prefix))
        finally:
            await gateway.aclose()

    return asyncio.run(run())


def test_a_tool_scores_the_case_it_receives(service: ScoringService, api_key: ApiKey) -> None:
    prefix = f"req_{uuid.uuid4().hex}"
    spec = {"type": "tool", "tool": "score.contains", "name": "has-order", "weight": 2}

    passed = score(spec, observe("Order A-1 shipped", "A-1"), api_key, prefix)
    failed = score(spec, observe("Order B-2 shipped", "A-1"), api_key, prefix)

    assert passed == Score("has-order", 1.0, True, "expected text found", weight=2.0)
    assert (failed.score, failed.passed, failed.reason) == (0.0, False, "expected text missing")
    key, body = service.calls[0]
    assert key == f"{prefix}:has-order"
    assert body == {
        "input": {"variables": {"order": "A-1"}},
        "output": "Order A-1 shipped",
        "expected": "A-1",
    }


def test_an_answer_outside_the_score_shape_is_a_failed_score(
    service: ScoringService, api_key: ApiKey
) -> None:
    result = score({"type": "tool", "tool": "score.out-of-shape"}, observe("x", "x"), api_key)

    assert (result.scorer, result.passed, result.score) == ("tool", False, 0.0)
    assert result.reason == (
        "the scoring tool's answer breaks the score's shape at $.score: 7 is greater than the maximum of 1"
    )


def test_a_failing_tool_is_a_failed_score(service: ScoringService, api_key: ApiKey) -> None:
    result = score({"type": "tool", "tool": "score.broken"}, observe("x", "x"), api_key)

    assert not result.passed
    assert result.reason == "the scoring tool failed: score.broken answered 500"


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ("score.missing", "scorer 0 (tool): `tool`: no signed tool is named 'score.missing'"),
        (
            "score.writes",
            "scorer 0 (tool): `tool`: 'score.writes' is not a webhook tool without side effects",
        ),
        ("score.http", "scorer 0 (tool): `tool`: 'score.http' is not a webhook tool without side effects"),
    ],
)
def test_only_a_signed_webhook_without_side_effects_can_score(
    service: ScoringService, tool: str, message: str
) -> None:
    with pytest.raises(ScorerSpecError) as error:
        build([{"type": "tool", "tool": tool}])
    assert str(error.value) == message


def test_an_unsigned_tool_is_unknown(service: ScoringService, settings: Settings) -> None:
    settings.AGENT_TOOL_PUBLIC_KEYS = {"evals": public_key_text(Ed25519PrivateKey.generate())}

    with pytest.raises(ScorerSpecError) as error:
        build([{"type": "tool", "tool": "score.contains"}])
    assert str(error.value) == "scorer 0 (tool): `tool`: no signed tool is named 'score.contains'"
