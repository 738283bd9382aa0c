"""GET /metrics answers a scraper with METRICS_TOKEN, or a loopback client when no
token is set; nobody else."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

import aiaas.asgi

TOKEN = "metrics-token-for-tests"


def get_metrics_from(client_address: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET /metrics on the ASGI application, as a client at `client_address`."""

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=aiaas.asgi.application, client=(client_address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get("/metrics", headers=headers)

    return asyncio.run(get())


def test_without_a_token_a_loopback_client_reads_the_metrics(platform_url: str, settings: Any) -> None:
    settings.METRICS_TOKEN = ""

    response = httpx.get(f"{platform_url}/metrics", timeout=5)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE ws_active_connections gauge\nws_active_connections " in response.text
    assert "# TYPE gateway_unmetered_requests_total counter\n" in response.text


def test_the_gateways_refusals_are_counted_in_the_metrics(platform_url: str, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    httpx.get(f"{platform_url}/v1/models", timeout=5)  # no key: a 401 that writes nothing

    response = httpx.get(f"{platform_url}/metrics", timeout=5)

    line = 'gateway_unmetered_requests_total{status="401",error_type="missing_api_key"} '
    assert line in response.text
    assert int(response.text.split(line)[1].split()[0]) >= 1


def test_without_a_token_another_client_is_refused(settings: Any) -> None:
    settings.METRICS_TOKEN = ""

    response = get_metrics_from("203.0.113.7")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "ws_active_connections" not in response.text


def test_with_a_token_only_its_bearer_reads_the_metrics(platform_url: str, settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN

    missing = httpx.get(f"{platform_url}/metrics", timeout=5)
    wrong = httpx.get(f"{platform_url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=5)
    right = httpx.get(f"{platform_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    from_afar = get_metrics_from("203.0.113.7", {"Authorization": f"Bearer {TOKEN}"})

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json()["error"]["code"] == "invalid_metrics_token"
    assert "ws_active_connections" not in missing.text + wrong.text
    assert right.status_code == 200
    assert "ws_send_errors " in right.text
    assert from_afar.status_code == 200
