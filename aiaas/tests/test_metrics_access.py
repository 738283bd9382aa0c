"""GET /metrics answers only the bearer of METRICS_TOKEN, on every host; anyone
else, and everyone while no token is set, gets the 404 of an unknown URL.
METRICS_LISTEN serves them, unauthenticated, on an internal address instead."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiaas.observability import exposition

TOKEN = "metrics-token-for-tests"


def get_metrics(
    platform_url: str, authorization: str | None = None, host: str = "localhost"
) -> httpx.Response:
    headers = {"host": host} | ({"authorization": authorization} if authorization is not None else {})
    return httpx.get(f"{platform_url}/metrics", headers=headers, timeout=5)


def family_names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


@pytest.mark.parametrize("host", ["localhost", "alpha.localhost", "api.example.com"])
def test_the_tokens_bearer_reads_the_metrics_on_every_host(
    platform_url: str, settings: Any, host: str
) -> None:
    settings.METRICS_TOKEN = TOKEN

    response = get_metrics(platform_url, f"Bearer {TOKEN}", host)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert {"aiaas_http_requests", "aiaas_websocket_connections"} <= family_names(response.text)


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer nope", f"bearer {TOKEN}", TOKEN, f"Bearer {TOKEN}x"]
)
def test_without_the_token_metrics_are_an_unknown_url(
    platform_url: str, settings: Any, authorization: str | None
) -> None:
    settings.METRICS_TOKEN = TOKEN
    unknown = httpx.get(f"{platform_url}/no-such-page", headers={"host": "localhost"}, timeout=5)

    response = get_metrics(platform_url, authorization)

    assert response.status_code == 404
    assert (unknown.status_code, response.headers["content-type"]) == (404, unknown.headers["content-type"])
    assert "aiaas_" not in response.text


def test_two_authorization_headers_get_a_404(platform_url: str, settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    headers = [
        ("host", "localhost"),
        ("authorization", f"Bearer {TOKEN}"),
        ("authorization", f"Bearer {TOKEN}"),
    ]

    response = httpx.get(f"{platform_url}/metrics", headers=headers, timeout=5)

    assert response.status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer anything"])
def test_while_no_token_is_set_nobody_reads_the_metrics(
    platform_url: str, settings: Any, authorization: str | None
) -> None:
    settings.METRICS_TOKEN = ""

    response = get_metrics(platform_url, authorization)

    assert response.status_code == 404
    assert "aiaas_" not in response.text


def test_metrics_listen_serves_them_unauthenticated_on_the_internal_address(settings: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.METRICS_TOKEN = ""
    settings.METRICS_LISTEN = f"127.0.0.1:{port}"

    listener = exposition.start_listener()
    assert listener is not None
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        again = exposition.start_listener()  # a second worker finds the port taken
    finally:
        listener.shutdown()
        listener.server_close()

    assert response.status_code == 200
    assert "aiaas_http_requests" in family_names(response.text)
    assert again is None


def test_without_metrics_listen_no_listener_starts(settings: Any) -> None:
    settings.METRICS_LISTEN = ""

    assert exposition.start_listener() is None
