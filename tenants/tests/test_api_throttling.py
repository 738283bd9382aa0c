"""/api throttles per key and per tenant (tenants/api/throttling.py), on the real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.test import override_settings
from pytest_django import Settings
from rest_framework.test import APIClient

from aiaas.redis_clients import sync_client
from aiaas.redis_keys import tenant_tag
from tenants.api.throttling import Rate
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from tenants.tests.factories import ApiKeyFactory
from testing.database import committed
from testing.tenants import TenantFixture

KEYS_URL = "/api/v1/keys"


def forget_throttles(*tenants: TenantFixture) -> None:
    client = sync_client("control")
    for fixture in tenants:
        for key in client.scan_iter(match=f"throttle:{tenant_tag(fixture.tenant.pk)}:api:*"):
            client.delete(key)


@pytest.fixture
def low_rates(settings: Settings, tenant: TenantFixture, other_tenant: TenantFixture) -> Iterator[None]:
    """3 requests a minute per key, 5 per tenant; the tenants' counts start from zero,
    and are dropped afterwards so the suite's later requests are not refused."""
    settings.API_KEY_THROTTLE_RATE = "3/min"
    settings.API_TENANT_THROTTLE_RATE = "5/min"
    forget_throttles(tenant, other_tenant)
    yield
    forget_throttles(tenant, other_tenant)


def admin_client(tenant: TenantFixture) -> APIClient:
    issued = ApiKeyFactory.create(tenant=tenant.tenant, name="throttled", scopes=[ApiKeyScope.ADMIN])
    return tenant.api_client(issued.secret)


def statuses(client: APIClient, count: int) -> list[int]:
    return [client.get(KEYS_URL).status_code for _ in range(count)]


def assert_refused(client: APIClient, subject: str, rate: str) -> None:
    response = client.get(KEYS_URL)
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    # 60 s / 3 after the burst of 3 (12 s for the tenant's 5), less the test's own seconds.
    assert 0 < retry_after <= 60 // Rate.parse(rate).requests
    assert response.json() == {
        "error": {
            "message": f"Rate limit of {Rate.parse(rate)} for this {subject} reached. "
            f"Expected available in {retry_after} second{'s' if retry_after != 1 else ''}.",
            "type": "rate_limit_error",
            "code": "rate_limit_exceeded",
            "param": None,
        }
    }


@pytest.mark.usefixtures("low_rates")
def test_a_key_past_its_rate_gets_429_with_retry_after(tenant: TenantFixture) -> None:
    client = admin_client(tenant)

    assert statuses(client, 3) == [200, 200, 200]
    assert_refused(client, "API key", "3/min")


@pytest.mark.usefixtures("low_rates")
def test_another_key_of_the_tenant_works_until_the_tenant_rate_is_reached(tenant: TenantFixture) -> None:
    first, second = admin_client(tenant), admin_client(tenant)
    assert statuses(first, 4) == [200, 200, 200, 429]  # the refused request counts for neither

    assert statuses(second, 2) == [200, 200]
    assert_refused(second, "organization", "5/min")
    assert_refused(first, "API key", "3/min")


@pytest.mark.usefixtures("low_rates")
def test_another_tenant_is_not_affected(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    first, second = admin_client(tenant), admin_client(tenant)
    assert statuses(first, 3) + statuses(second, 3) == [200, 200, 200, 200, 200, 429]

    assert statuses(admin_client(other_tenant), 3) == [200, 200, 200]


@pytest.mark.usefixtures("low_rates")
def test_without_the_limits_redis_the_api_refuses_with_503(tenant: TenantFixture) -> None:
    client = admin_client(tenant)

    with override_settings(REDIS_LIMITS_URL="redis://127.0.0.1:1/0"):
        response = client.get(KEYS_URL)

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "throttle_unavailable"


def test_concurrent_requests_to_the_served_api_are_admitted_exactly_up_to_the_rate(
    platform_url: str, serving_tenant: TenantFixture, settings: Settings
) -> None:
    """20 requests at once, over the server's threads, for a rate of 5: exactly 5 pass."""
    settings.API_KEY_THROTTLE_RATE = "5/min"
    issued = committed(
        lambda: create_api_key(serving_tenant.tenant, name="throttled-served", scopes=[ApiKeyScope.ADMIN])
    )
    headers = {"Host": "localhost", "Authorization": f"Bearer {issued.secret}"}

    def get(_: int) -> int:
        return httpx.get(f"{platform_url}{KEYS_URL}", headers=headers, timeout=30).status_code

    try:
        with ThreadPoolExecutor(max_workers=20) as executor:
            answered = list(executor.map(get, range(20)))
    finally:
        forget_throttles(serving_tenant)

    assert sorted(answered) == [200] * 5 + [429] * 15


@pytest.mark.parametrize("text", ["", "0/min", "ten/min", "10/fortnight", "10/month", "10"])
def test_a_malformed_rate_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="a throttle rate reads like"):
        Rate.parse(text)


def test_rates_read_as_drf_spells_them() -> None:
    assert [Rate.parse(text) for text in ("600/min", "10/s", "5/hour", "1/day")] == [
        Rate(600, 60),
        Rate(10, 1),
        Rate(5, 3600),
        Rate(1, 86_400),
    ]
    assert str(Rate(600, 60)) == "600 requests per minute"
