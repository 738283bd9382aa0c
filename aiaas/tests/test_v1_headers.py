"""Every /v1 answer carries x-request-id and x-aiaas-overhead-ms, whichever server
part answers it (the gateway, or Django for files, vector stores and batches),
errors included. Through the real server."""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings

from testing.tenants import TenantFixture


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/models", 200),
        ("/v1/files", 200),
        ("/v1/vector_stores", 200),
        ("/v1/batches", 200),
        ("/v1/files/file-unknown", 404),
        ("/v1/nothing", 404),
    ],
)
def test_every_v1_answer_carries_the_request_id_and_the_overhead(
    platform_url: str, serving_tenant: TenantFixture, path: str, status: int
) -> None:
    response = httpx.get(
        platform_url + path,
        headers={"authorization": f"Bearer {serving_tenant.admin_key}", "host": settings.BASE_DOMAIN},
        timeout=10,
    )

    assert response.status_code == status, response.text
    assert response.headers["x-request-id"].startswith("req_")
    assert float(response.headers["x-aiaas-overhead-ms"]) >= 0
    assert response.headers.get_list("x-aiaas-overhead-ms") == [response.headers["x-aiaas-overhead-ms"]]


@pytest.mark.parametrize("path", ["/v1/models", "/v1/files", "/v1/batches", "/v1/files/file-unknown"])
@pytest.mark.parametrize("header", ["x-client-request-id", "x-request-id"])
def test_a_clients_own_request_id_comes_back_on_both_servers(
    platform_url: str, serving_tenant: TenantFixture, path: str, header: str
) -> None:
    def get(client_id: str) -> httpx.Response:
        return httpx.get(
            platform_url + path,
            headers={"authorization": f"Bearer {serving_tenant.admin_key}", header: client_id},
            timeout=10,
        )

    named, malformed = get("checkout:42.retry-1"), get("two words")

    assert named.headers["x-client-request-id"] == "checkout:42.retry-1"
    assert named.headers["x-request-id"].startswith("req_")  # ours: it keys the ledger
    assert "x-client-request-id" not in malformed.headers
