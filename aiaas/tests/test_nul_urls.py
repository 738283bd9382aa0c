"""A NUL character in a URL, through the real server: a 400 in OpenAI's shape on every
surface, never a 500 from the database that cannot hold it."""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings

from testing.tenants import TenantFixture


@pytest.mark.parametrize(
    "url",
    [
        "/v1/files/%00",
        "/v1/files?purpose=%00",
        "/v1/vector_stores/vs_%00/files",
        "/v1/batches?after=%00",
        "/v1/responses/%00",
        "/v1/models/%00",
        "/api/v1/collections?after=%00",
        "/api/v1/usage?group_by=%00",
    ],
)
def test_a_nul_in_the_url_is_a_400_in_openais_shape(
    platform_url: str, serving_tenant: TenantFixture, url: str
) -> None:
    response = httpx.get(
        platform_url + url,
        headers={"authorization": f"Bearer {serving_tenant.admin_key}", "host": settings.BASE_DOMAIN},
        timeout=10,
    )

    assert response.status_code == 400, response.text
    assert response.headers["x-request-id"].startswith("req_")
    assert ("x-aiaas-overhead-ms" in response.headers) == url.startswith("/v1/")
    assert response.json() == {
        "error": {
            "message": "The URL must not contain NUL characters.",
            "type": "invalid_request_error",
            "code": "invalid_url",
            "param": None,
        }
    }


def test_a_nul_on_a_dashboard_page_is_a_400(platform_url: str, serving_tenant: TenantFixture) -> None:
    response = httpx.get(f"{platform_url}/login/?next=%00", headers={"host": serving_tenant.host}, timeout=10)

    assert response.status_code == 400
