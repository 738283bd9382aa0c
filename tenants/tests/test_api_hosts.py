"""/api and /v1 find their tenant by the API key on any host, as the gateway does
(issue 2): an IP, an internal service name, a load balancer's name. The dashboards
keep refusing a host that is not theirs."""

from __future__ import annotations

import httpx
import pytest

from testing.tenants import TenantFixture

PATHS = ("/api/v1/tenant/settings", "/v1/files", "/v1/batches", "/v1/models")


@pytest.mark.parametrize("host", [None, "10.0.0.7", "aiaas-web.aiaas.svc.cluster.local:8000"])
def test_the_api_answers_a_key_on_any_host(
    platform_url: str, serving_tenant: TenantFixture, host: str | None
) -> None:
    headers = {"authorization": f"Bearer {serving_tenant.admin_key}"}
    if host is not None:  # else 127.0.0.1:<port>, as a client given the server's address sends it
        headers["host"] = host
    with httpx.Client(base_url=platform_url, headers=headers, timeout=10) as client:
        answers = {path: client.get(path) for path in PATHS}
        anonymous = client.get("/api/v1/tenant/settings", headers={"authorization": ""})

    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(PATHS, 200)
    assert anonymous.status_code == 401


def test_a_dashboard_path_on_an_unknown_host_is_refused(platform_url: str) -> None:
    response = httpx.get(f"{platform_url}/dashboard/", headers={"host": "10.0.0.7"}, timeout=10)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_host"
